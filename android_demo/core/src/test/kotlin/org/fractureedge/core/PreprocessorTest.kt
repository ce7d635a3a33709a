package org.fractureedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class PreprocessorTest {
    @Test
    fun greyUsesBt601WeightsAndIgnoresAlpha() {
        val g = Preprocessor.toGrey(
            intArrayOf(Fixtures.argb(255, 0, 0, a = 0), Fixtures.argb(0, 255, 0), Fixtures.argb(0, 0, 255), -1),
            4,
            1
        )
        assertEquals(0.299 * 255, g[0], 1e-12)
        assertEquals(0.587 * 255, g[1], 1e-12)
        assertEquals(0.114 * 255, g[2], 1e-12)
        assertEquals(255.0, g[3], 1e-9)
    }

    @Test
    fun letterboxGeometry() {
        // 454 x 373 (h x w) into 224 x 224: s = 224/454, nw = floor(373*s + 0.5) = 184, left = 20.
        assertEquals(Letterbox(top = 0, left = 20, height = 224, width = 184), Preprocessor.letterboxFor(454, 373, 224, 224))
        assertEquals(Letterbox(top = 56, left = 0, height = 112, width = 224), Preprocessor.letterboxFor(100, 200, 224, 224))
        // Extremely thin images keep at least one row.
        assertEquals(1, Preprocessor.letterboxFor(1, 10_000, 224, 224).height)
    }

    @Test
    fun sameSizeIsIdentityAndPaddingUsesPadValue() {
        val spec = Fixtures.multiclassSpec() // 4 x 6, 3 channels, pad 0
        val pre = Preprocessor(spec)
        val px = IntArray(4 * 6) { Fixtures.argb(it * 10, it * 10, it * 10) }
        val p = pre.prepare(px, 6, 4)
        assertArrayEquals(IntArray(24) { it * 10 }, p.u8)
        // 2 x 6 image centred vertically in 4 x 6: rows 0 and 3 are padding.
        val o = Fixtures.multiclassSpecJson()
        o.getJSONObject("preprocess").put("pad_value", 7)
        val padded = Preprocessor(ModelSpec.fromJson(o)).prepare(IntArray(12) { Fixtures.argb(200, 200, 200) }, 6, 2)
        assertEquals(Letterbox(1, 0, 2, 6), padded.letterbox)
        assertEquals(7, padded.u8[0])
        assertEquals(200, padded.u8[6])
        assertEquals(7, padded.u8[23])
    }

    @Test
    fun bilinearHalfPixelDownscaleAveragesPairs() {
        val spec = Fixtures.multiclassSpec() // canvas 4 x 6
        // 8 x 12 image with columns alternating 0 / 100: 2x downscale samples exactly between them.
        val px = IntArray(8 * 12) { i -> if (i % 2 == 0) Fixtures.argb(0, 0, 0) else Fixtures.argb(100, 100, 100) }
        val u8 = Preprocessor(spec).prepare(px, 12, 8).u8
        assertEquals(IntArray(24) { 50 }.toList(), u8.toList())
    }

    @Test
    fun normalizeReplicatesGreyIntoChannels() {
        val spec = Fixtures.multiclassSpec() // mean 1,2,3 std 2,4,8
        val f = Preprocessor(spec).normalize(intArrayOf(9))
        assertArrayEquals(floatArrayOf(4f, 1.75f, 0.75f), f, 0f)
    }

    @Test
    fun quantizeRoundsHalfUpAndClamps() {
        val o = Fixtures.binarySpecJson()
        o.getJSONObject("input").put("dtype", "int8").put("scale", 0.5).put("zero_point", -10)
        val pre = Preprocessor(ModelSpec.fromJson(o))
        val q = pre.quantize(floatArrayOf(0f, 0.25f, -0.25f, 1000f, -1000f, 1.3f))
        // floor(x/0.5 + 0.5) - 10
        assertArrayEquals(byteArrayOf(-10, -9, -10, 127, -128, -7), q)
        // scale 0.003921569 is a hair above 1/255: 0.5 lands on 127.49999 -> 127.
        val u = Preprocessor(Fixtures.binarySpec()).quantize(floatArrayOf(0f, 1f, 0.5f, 2f))
        assertArrayEquals(intArrayOf(0, 255, 127, 255), u.map { it.toInt() and 0xFF }.toIntArray())
    }

    @Test
    fun floatInputBytesFollowRequestedOrder() {
        val spec = Fixtures.multiclassSpec()
        val px = IntArray(24) { Fixtures.argb(9, 9, 9) }
        val p = Preprocessor(spec).prepare(px, 6, 4, ByteOrder.LITTLE_ENDIAN)
        assertEquals(24 * 3 * 4, p.tensorBytes.size)
        val fb = ByteBuffer.wrap(p.tensorBytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        assertEquals(4f, fb.get(0), 0f)
        assertEquals(0.75f, fb.get(2), 0f)
    }

    @Test(expected = IllegalArgumentException::class)
    fun rejectsTooFewPixels() {
        Preprocessor(Fixtures.binarySpec()).prepare(IntArray(3), 2, 2)
    }
}
