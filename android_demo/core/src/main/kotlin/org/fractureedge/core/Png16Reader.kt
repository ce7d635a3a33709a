package org.fractureedge.core

import java.io.ByteArrayOutputStream
import java.nio.ByteBuffer
import java.util.zip.DataFormatException
import java.util.zip.Inflater

/**
 * 16-bit greyscale PNG in pure Kotlin (Android's decoder would cut it to 8 bits): inflate the
 * IDAT stream, undo the five PNG row filters, then min-max window to 0..255 exactly as
 * edge.core.imageio does (`(v - lo) * (255 / (hi - lo))`). Interlaced and colour 16-bit files
 * are refused with a message: the server decodes them.
 */
object Png16Reader {
    private val signature = byteArrayOf(0x89.toByte(), 'P'.code.toByte(), 'N'.code.toByte(), 'G'.code.toByte(), 13, 10, 26, 10)

    /** True for a PNG whose IHDR says 16 bits per sample (the header's first 26 bytes are enough). */
    fun isPng16(head: ByteArray): Boolean = head.size > 24 && head.copyOf(8).contentEquals(signature) && head[24].toInt() == 16

    fun read(data: ByteArray, maxPixels: Long = DicomReader.MAX_PIXELS): DicomImage {
        if (!isPng16(data)) throw UnsupportedImageException("not a 16-bit PNG")
        val b = ByteBuffer.wrap(data)
        val width = b.getInt(16)
        val height = b.getInt(20)
        val colour = data[25].toInt()
        val interlace = data[28].toInt()
        if (colour != 0) throw UnsupportedImageException("16-bit colour PNG is decoded by the server only: send it to edge serve")
        if (interlace != 0) throw UnsupportedImageException("interlaced 16-bit PNG is decoded by the server only: send it to edge serve")
        if (width <= 0 || height <= 0 || width.toLong() * height > maxPixels) {
            throw UnsupportedImageException("PNG size ${width}x$height not accepted (limit $maxPixels pixels)")
        }
        val raw = inflate(idat(data))
        val stride = width * 2
        if (raw.size < (stride + 1).toLong() * height) throw UnsupportedImageException("truncated PNG image data")
        val values = DoubleArray(width * height)
        val prev = ByteArray(stride)
        val row = ByteArray(stride)
        for (y in 0 until height) {
            val at = y * (stride + 1)
            System.arraycopy(raw, at + 1, row, 0, stride)
            unfilter(raw[at].toInt(), row, prev)
            for (x in 0 until width) {
                values[y * width + x] =
                    (((row[2 * x].toInt() and 0xFF) shl 8) or (row[2 * x + 1].toInt() and 0xFF)).toDouble()
            }
            row.copyInto(prev)
        }
        return DicomImage(minMax(values), width, height, "PNG16", 1)
    }

    /** The IDAT chunks' bytes, concatenated (chunk CRCs are not checked: zlib's Adler-32 covers the data). */
    private fun idat(data: ByteArray): ByteArray {
        val out = ByteArrayOutputStream()
        var pos = 8
        val b = ByteBuffer.wrap(data)
        while (pos + 8 <= data.size) {
            val len = b.getInt(pos)
            val type = String(data, pos + 4, 4, Charsets.US_ASCII)
            if (len < 0 || pos + 12L + len > data.size) throw UnsupportedImageException("truncated PNG chunk $type")
            if (type == "IDAT") out.write(data, pos + 8, len)
            if (type == "IEND") break
            pos += 12 + len
        }
        return out.toByteArray()
    }

    private fun inflate(z: ByteArray): ByteArray {
        val inflater = Inflater()
        try {
            inflater.setInput(z)
            val out = ByteArrayOutputStream(z.size * 4)
            val buf = ByteArray(1 shl 16)
            while (!inflater.finished()) {
                val n = inflater.inflate(buf)
                if (n == 0 &&
                    (inflater.needsInput() || inflater.needsDictionary())
                ) {
                    throw UnsupportedImageException("truncated PNG image data")
                }
                out.write(buf, 0, n)
            }
            return out.toByteArray()
        } catch (e: DataFormatException) {
            throw UnsupportedImageException("corrupt PNG image data (${e.message})")
        } finally {
            inflater.end()
        }
    }

    /** PNG filter types 0-4 (PNG spec section 9) with 2 bytes per pixel, in place on [row]. */
    private fun unfilter(type: Int, row: ByteArray, prev: ByteArray) {
        val bpp = 2
        for (i in row.indices) {
            val a = if (i >= bpp) row[i - bpp].toInt() and 0xFF else 0
            val up = prev[i].toInt() and 0xFF
            val c = if (i >= bpp) prev[i - bpp].toInt() and 0xFF else 0
            val add =
                when (type) {
                    0 -> 0
                    1 -> a
                    2 -> up
                    3 -> (a + up) / 2
                    4 -> paeth(a, up, c)
                    else -> throw UnsupportedImageException("corrupt PNG (row filter $type)")
                }
            row[i] = ((row[i].toInt() and 0xFF) + add).toByte()
        }
    }

    private fun paeth(a: Int, b: Int, c: Int): Int {
        val p = a + b - c
        val pa = kotlin.math.abs(p - a)
        val pb = kotlin.math.abs(p - b)
        val pc = kotlin.math.abs(p - c)
        return if (pa <= pb && pa <= pc) {
            a
        } else if (pb <= pc) {
            b
        } else {
            c
        }
    }

    private fun minMax(x: DoubleArray): DoubleArray {
        val lo = x.min()
        val hi = x.max()
        if (hi <= lo) return DoubleArray(x.size)
        val k = 255.0 / (hi - lo)
        return DoubleArray(x.size) { i -> (x[i] - lo) * k }
    }
}
