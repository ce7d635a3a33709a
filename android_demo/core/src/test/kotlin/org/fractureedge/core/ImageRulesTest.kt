package org.fractureedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

class ImageRulesTest {
    @Test
    fun downsamplingKeepsTwiceTheModelInputOnEachAxis() {
        // 12 MP photo, 224 model: /4 gives 1008x756 (>= 448 both), /8 would give 504x378.
        assertEquals(4, DecodeSampling.inSampleSize(4032, 3024, 224, 224))
        assertEquals(1, DecodeSampling.inSampleSize(200, 150, 224, 224)) // smaller than the input
        assertEquals(1, DecodeSampling.inSampleSize(895, 895, 224, 224)) // /2 would be 447 < 448
        assertEquals(2, DecodeSampling.inSampleSize(896, 896, 224, 224))
        assertEquals(1, DecodeSampling.inSampleSize(8000, 500, 224, 224)) // the short axis decides
        for ((w, h) in listOf(4032 to 3024, 3000 to 4000, 6000 to 900, 1024 to 1024)) {
            val s = DecodeSampling.inSampleSize(w, h, 224, 224)
            assertTrue("power of two: $s", s > 0 && s and (s - 1) == 0)
            assertTrue("$w x $h / $s keeps 2x", s == 1 || (w / s >= 448 && h / s >= 448))
            assertTrue("$w x $h: ${s * 2} would also keep 2x", w / (s * 2) < 448 || h / (s * 2) < 448)
        }
    }

    /** 3 wide x 2 high, pixel value = its index: 0 1 2 / 3 4 5. */
    private val src = Pixels(IntArray(6) { it }, 3, 2)

    private fun oriented(o: Int): Pair<List<Int>, Pair<Int, Int>> = ExifOrientation.apply(src, o).let {
        it.argb.toList() to
            (it.width to it.height)
    }

    @Test
    fun exifOrientationsMatchPillowExifTranspose() {
        // Expected arrays are Pillow's ImageOps.exif_transpose of the same 3x2 image, per tag.
        assertEquals(listOf(0, 1, 2, 3, 4, 5) to (3 to 2), oriented(1))
        assertEquals(listOf(2, 1, 0, 5, 4, 3) to (3 to 2), oriented(2))
        assertEquals(listOf(5, 4, 3, 2, 1, 0) to (3 to 2), oriented(3))
        assertEquals(listOf(3, 4, 5, 0, 1, 2) to (3 to 2), oriented(4))
        assertEquals(listOf(0, 3, 1, 4, 2, 5) to (2 to 3), oriented(5))
        assertEquals(listOf(3, 0, 4, 1, 5, 2) to (2 to 3), oriented(6))
        assertEquals(listOf(5, 2, 4, 1, 3, 0) to (2 to 3), oriented(7))
        assertEquals(listOf(2, 5, 1, 4, 0, 3) to (2 to 3), oriented(8))
        assertEquals(listOf(0, 1, 2, 3, 4, 5) to (3 to 2), oriented(0)) // missing tag
    }

    private fun head(vararg bytes: Int, at: Int = 0): ByteArray = ByteArray(ImageFormats.HEADER_BYTES).also { h ->
        bytes.forEachIndexed { i, b -> h[at + i] = b.toByte() }
    }

    @Test
    fun formatsAreSniffedFromContent() {
        assertEquals(ImageKind.JPEG, ImageFormats.kind(head(0xFF, 0xD8, 0xFF)))
        assertEquals(ImageKind.DICOM, ImageFormats.kind(head('D'.code, 'I'.code, 'C'.code, 'M'.code, at = 128)))
        assertEquals(ImageKind.WEBP, ImageFormats.kind("RIFF\u0000\u0000\u0000\u0000WEBPVP8 ".toByteArray(Charsets.ISO_8859_1)))
        assertEquals(null, ImageFormats.kind(head(1, 2, 3)))
    }

    @Test
    fun serverOnlyFormatsAreRefusedWithAMessage() {
        fun refused(h: ByteArray): String = try {
            ImageFormats.requirePhoneDecodable(h)
            "accepted"
        } catch (e: UnsupportedImageException) {
            e.message!!
        }
        assertTrue(refused(head('I'.code, 'I'.code, 42, 0)).contains("TIFF is decoded by the server only"))
        val png16 = head(0x89, 'P'.code, 'N'.code, 'G'.code, 13, 10, 26, 10)
        png16[24] = 16
        assertEquals(ImageKind.PNG, ImageFormats.requirePhoneDecodable(png16))
        assertTrue(Png16Reader.isPng16(png16))
        png16[24] = 8
        assertTrue(!Png16Reader.isPng16(png16))
        assertTrue(refused(head(0, 0, 0)).contains("unknown format"))
    }

    @Test
    fun planKeepsEveryFormatPythonReads() {
        val plan = ValidationPlan.fromRelativePaths(listOf("fractured/a.tif", "not_fractured/b.dcm", "x/c.webp", "fractured/d.txt"))
        assertArrayEquals(arrayOf("fractured/a.tif", "not_fractured/b.dcm", "x/c.webp"), plan.map { it.path }.toTypedArray())
    }
}
