package org.fractureedge.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test

/**
 * Grey-image vectors (EDGE_VECTORS_DIR/<sub>/manifest.json): each file's decoded grey values and
 * letterboxed canvas as Python computes them, or the phone's expected refusal ("phone_error").
 */
object GreyVectors {
    /** (cases compared, cases refused as expected). */
    fun check(sub: String, format: String, read: (ByteArray) -> DicomImage): Pair<Int, Int> {
        val dir = File(TestEnv.require("EDGE_VECTORS_DIR", "EDGE_SKIP_VECTORS"), sub)
        val manifest = JSONObject(File(dir, "manifest.json").readText())
        assertEquals(format, manifest.getString("format"))
        val pre = manifest.getJSONObject("preprocess")
        val spec = Fixtures.binarySpecJson()
        spec.put("preprocess", pre)
        val size = pre.getJSONArray("size")
        spec.getJSONObject("input").put("shape", org.json.JSONArray(listOf(1, size.getInt(0), size.getInt(1), pre.getInt("channels"))))
        val preprocessor = Preprocessor(ModelSpec.fromJson(spec))
        val tol = manifest.getDouble("grey_abs")
        val cases = manifest.getJSONArray("cases")
        var compared = 0
        var refused = 0
        for (i in 0 until cases.length()) {
            val c = cases.getJSONObject(i)
            val name = c.getString("name")
            val bytes = File(dir, c.getString("file")).readBytes()
            if (c.has("phone_error")) {
                val msg =
                    try {
                        read(bytes)
                        "read"
                    } catch (e: UnsupportedImageException) {
                        e.message!!
                    }
                assertTrue("$name: $msg", msg.contains(c.getString("phone_error")) && msg.contains("edge serve"))
                refused++
                continue
            }
            val img = read(bytes)
            assertEquals("$name width", c.getInt("width"), img.width)
            assertEquals("$name height", c.getInt("height"), img.height)
            val want = ByteBuffer.wrap(File(dir, c.getString("grey_f64")).readBytes()).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer()
            assertEquals("$name grey size", want.remaining(), img.grey.size)
            for (k in img.grey.indices) {
                if (abs(want.get(k) - img.grey[k]) > tol) throw AssertionError("$name: grey [$k] ${img.grey[k]} vs Python ${want.get(k)}")
            }
            val u8 = File(dir, c.getString("letterbox_u8")).readBytes()
            val p = img.toPixels()
            val got = preprocessor.prepareGrey(p.grey!!, p.width, p.height).u8
            for (k in u8.indices) assertEquals("$name: canvas [$k]", u8[k].toInt() and 0xFF, got[k])
            compared++
        }
        return compared to refused
    }
}

/** 16-bit greyscale PNG (every row filter) against Python's min-max windowing. */
class Png16ParityTest {
    @Test
    fun readerMatchesPythonOnGeneratedFiles() {
        val (compared, _) = GreyVectors.check("png16", "fracture-edge/png16-vectors") { Png16Reader.read(it) }
        assertTrue("compared $compared", compared >= 2)
    }

    @Test
    fun interlacedColourAndCorruptFilesGiveMessages() {
        val dir = File(TestEnv.require("EDGE_VECTORS_DIR", "EDGE_SKIP_VECTORS"), "png16")
        val good = File(dir, "ramp_12bit.png").readBytes()
        fun msg(b: ByteArray) = try {
            Png16Reader.read(b)
            "read"
        } catch (e: UnsupportedImageException) {
            e.message!!
        }
        assertTrue(msg(good.copyOf().also { it[28] = 1 }).contains("interlaced"))
        assertTrue(msg(good.copyOf().also { it[25] = 2 }).contains("colour"))
        assertTrue(msg(good.copyOf(good.size / 2)).let { it.contains("truncated") || it.contains("corrupt") })
    }
}

/**
 * The phone's DICOM reader against pydicom, on files `edge parity-vectors` makes with pydicom
 * (EDGE_VECTORS_DIR/dicom): every grey value, the letterboxed canvas, and the refusals.
 */
class DicomParityTest {
    @Test
    fun readerMatchesPydicomOnGeneratedFiles() {
        val (compared, refused) = GreyVectors.check("dicom", "fracture-edge/dicom-vectors") { DicomReader.read(it) }
        assertTrue("compared $compared, refused $refused", compared >= 5 && refused >= 1)
    }

    @Test
    fun nonDicomAndTruncatedFilesGiveMessages() {
        fun msg(b: ByteArray) = try {
            DicomReader.read(b)
            "read"
        } catch (e: UnsupportedImageException) {
            e.message!!
        }
        assertTrue(msg(ByteArray(200)).contains("not a DICOM"))
        val head = ByteArray(140).also { "DICM".toByteArray().copyInto(it, 128) }
        head[132] = 0x02
        head[136] = 'U'.code.toByte()
        head[137] = 'L'.code.toByte()
        head[138] = 0x04
        assertTrue(msg(head).let { it.contains("truncated") || it.contains("no pixel data") })
    }
}
