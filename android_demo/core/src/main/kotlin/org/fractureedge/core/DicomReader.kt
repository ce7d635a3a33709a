package org.fractureedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** A decoded grey image (a DICOM frame, a 16-bit PNG): values 0..255 as doubles, exactly as edge.core.imageio computes them. */
class DicomImage(val grey: DoubleArray, val width: Int, val height: Int, val photometric: String, val frames: Int) {
    /** Opaque grey ARGB for display (the classifier uses [grey] itself, unrounded, as Python does). */
    fun toPixels(): Pixels = Pixels(
        IntArray(grey.size) { i ->
            val v = kotlin.math.floor(grey[i] + 0.5).toInt().coerceIn(0, 255)
            (0xFF shl 24) or (v shl 16) or (v shl 8) or v
        },
        width,
        height,
        grey
    )
}

/**
 * A pure-Kotlin reader for uncompressed DICOM (Part 10 files): explicit and implicit VR little
 * endian, 8 and 16 bit (signed or not), MONOCHROME1/2, rescale slope/intercept, window centre/
 * width, else min-max; the middle frame of a multi-frame file. The same arithmetic as
 * edge.core.imageio (pydicom's modality LUT, then PS3.3 C.11.2.1.2.1 windowing onto 0..255),
 * checked against pydicom's output by DicomParityTest. Everything else (compressed transfer
 * syntaxes, colour, VOI LUT sequences) is refused with a message: the server decodes those.
 * Nothing here logs: tags such as the patient's name are never read into memory as text.
 */
object DicomReader {
    const val MAX_PIXELS = 64_000_000L // as edge.core.imageio's decompression-bomb limit
    private const val IMPLICIT_LE = "1.2.840.10008.1.2"
    private const val EXPLICIT_LE = "1.2.840.10008.1.2.1"
    private val longLengthVrs = setOf("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
    private const val PIXEL_DATA = 0x7FE00010
    private const val UNDEFINED = -1

    /** The tags the reader keeps, as (group shl 16) or element. */
    private val wanted = setOf(
        0x00020010, 0x00280002, 0x00280004, 0x00280008, 0x00280010, 0x00280011, 0x00280100, 0x00280101,
        0x00280103, 0x00281050, 0x00281051, 0x00281052, 0x00281053, 0x00283010, PIXEL_DATA
    )

    private class Element(val offset: Int, val length: Int)

    fun read(data: ByteArray): DicomImage {
        if (data.size < 132 || String(data, 128, 4, Charsets.US_ASCII) != "DICM") {
            throw UnsupportedImageException("not a DICOM Part 10 file (no DICM preamble)")
        }
        val b = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN)
        val tags = HashMap<Int, Element>()
        try {
            parse(b, 132, data.size, tags)
        } catch (e: IndexOutOfBoundsException) {
            throw UnsupportedImageException("truncated or corrupt DICOM file")
        }
        return decode(b, tags)
    }

    /** Walks the top-level elements; group 0002 is always explicit VR, the rest as the transfer syntax says. */
    private fun parse(b: ByteBuffer, start: Int, end: Int, tags: MutableMap<Int, Element>) {
        var pos = start
        var implicit = false
        var checked = false
        while (pos + 8 <= end) {
            val tag = (b.getShort(pos).toInt() and 0xFFFF shl 16) or (b.getShort(pos + 2).toInt() and 0xFFFF)
            if (!checked && tag ushr 16 != 0x0002) {
                implicit = transferSyntax(b, tags) == IMPLICIT_LE
                checked = true
            }
            val (valueAt, length, vr) = header(b, pos, implicit && tag ushr 16 != 0x0002)
            if (tag == PIXEL_DATA && length == UNDEFINED) {
                throw UnsupportedImageException("compressed DICOM (encapsulated pixel data): send it to edge serve")
            }
            if (tag in wanted) tags[tag] = Element(valueAt, length)
            pos = if (length == UNDEFINED) skipUndefined(b, valueAt, end, vr) else valueAt + length
            if (tag == PIXEL_DATA) break
        }
    }

    /** (value offset, length or UNDEFINED, VR or "" when implicit) of the element at [pos]. */
    private fun header(b: ByteBuffer, pos: Int, implicit: Boolean): Triple<Int, Int, String> {
        if (implicit) return Triple(pos + 8, b.getInt(pos + 4), "")
        val vr = String(byteArrayOf(b.get(pos + 4), b.get(pos + 5)), Charsets.US_ASCII)
        return if (vr in
            longLengthVrs
        ) {
            Triple(pos + 12, b.getInt(pos + 8), vr)
        } else {
            Triple(pos + 8, b.getShort(pos + 6).toInt() and 0xFFFF, vr)
        }
    }

    /** Skips a sequence (or item) of undefined length up to its delimiter; returns the position after it. */
    private fun skipUndefined(b: ByteBuffer, start: Int, end: Int, vr: String): Int {
        var pos = start
        var depth = 1
        while (pos + 8 <= end) {
            val group = b.getShort(pos).toInt() and 0xFFFF
            val element = b.getShort(pos + 2).toInt() and 0xFFFF
            val length = b.getInt(pos + 4)
            if (group == 0xFFFE) {
                when (element) {
                    0xE000 -> if (length == UNDEFINED) depth++ else pos += length

                    // item: enter or skip
                    0xE00D, 0xE0DD -> if (--depth == 0) return pos + 8
                }
                pos += 8
                continue
            }
            // An element inside an item of undefined length: nested data is skipped by its explicit
            // length; undefined-length nested sequences deepen the walk.
            val (valueAt, len, _) = header(b, pos, vr.isEmpty())
            if (len == UNDEFINED) {
                depth++
                pos = valueAt
            } else {
                pos = valueAt + len
            }
        }
        throw UnsupportedImageException("truncated DICOM sequence")
    }

    private fun transferSyntax(b: ByteBuffer, tags: Map<Int, Element>): String {
        val ts = text(b, tags[0x00020010]) ?: IMPLICIT_LE
        if (ts != IMPLICIT_LE && ts != EXPLICIT_LE) {
            throw UnsupportedImageException("compressed or big-endian DICOM (transfer syntax $ts): send it to edge serve")
        }
        return ts
    }

    private fun text(b: ByteBuffer, e: Element?): String? = e?.let {
        String(b.array(), it.offset, it.length, Charsets.US_ASCII).trim { c -> c <= ' ' }
    }

    private fun us(b: ByteBuffer, tags: Map<Int, Element>, tag: Int, default: Int? = null): Int =
        tags[tag]?.let { b.getShort(it.offset).toInt() and 0xFFFF }
            ?: default ?: throw UnsupportedImageException("DICOM lacks tag (%04X,%04X)".format(tag ushr 16, tag and 0xFFFF))

    /** First value of a DS/IS element ("40\400" -> 40.0), or null. */
    private fun number(b: ByteBuffer, tags: Map<Int, Element>, tag: Int): Double? =
        text(b, tags[tag])?.substringBefore('\\')?.trim()?.takeIf { it.isNotEmpty() }?.toDoubleOrNull()

    private fun decode(b: ByteBuffer, tags: Map<Int, Element>): DicomImage {
        val pixel = tags[PIXEL_DATA] ?: throw UnsupportedImageException("DICOM has no pixel data (not an image object)")
        val rows = us(b, tags, 0x00280010)
        val cols = us(b, tags, 0x00280011)
        val frames = number(b, tags, 0x00280008)?.toInt() ?: 1
        if (rows.toLong() * cols * frames == 0L || rows.toLong() * cols * frames > MAX_PIXELS) {
            throw UnsupportedImageException("DICOM image size ${rows}x${cols}x$frames frames not accepted (limit $MAX_PIXELS pixels)")
        }
        val photometric = text(b, tags[0x00280004]) ?: "MONOCHROME2"
        if (us(b, tags, 0x00280002, 1) != 1 || !photometric.startsWith("MONOCHROME")) {
            throw UnsupportedImageException("colour DICOM ($photometric) is decoded by the server only: send it to edge serve")
        }
        if (0x00283010 in
            tags
        ) {
            throw UnsupportedImageException("DICOM with a VOI LUT sequence is decoded by the server only: send it to edge serve")
        }
        val values = frameValues(b, tags, pixel, rows * cols, frames)
        val slope = number(b, tags, 0x00281053)
        val intercept = number(b, tags, 0x00281052)
        if (slope != null && intercept != null) for (i in values.indices) values[i] = values[i] * slope + intercept
        val centre = number(b, tags, 0x00281050)
        val width = number(b, tags, 0x00281051)
        val grey = if (centre != null && width != null) window(values, centre, width) else minMax(values)
        if (photometric == "MONOCHROME1") for (i in grey.indices) grey[i] = 255.0 - grey[i] // high values are dark
        return DicomImage(grey, cols, rows, photometric, frames)
    }

    /** The middle frame's stored values (as pydicom reads them: masked to BitsStored, sign-extended when signed). */
    private fun frameValues(b: ByteBuffer, tags: Map<Int, Element>, pixel: Element, n: Int, frames: Int): DoubleArray {
        val bits = us(b, tags, 0x00280100)
        val stored = us(b, tags, 0x00280101, bits)
        val signed = us(b, tags, 0x00280103, 0) == 1
        if (bits != 8 && bits != 16) throw UnsupportedImageException("DICOM with $bits bits allocated is decoded by the server only")
        val bytes = bits / 8
        if (pixel.length.toLong() < n.toLong() * frames * bytes) throw UnsupportedImageException("truncated DICOM pixel data")
        val start = pixel.offset + (frames / 2) * n * bytes
        val mask = (1 shl stored) - 1
        return DoubleArray(n) { i ->
            val raw = if (bytes == 1) b.get(start + i).toInt() and 0xFF else b.getShort(start + 2 * i).toInt() and 0xFFFF
            val v = raw and mask
            (if (signed && v and (1 shl (stored - 1)) != 0) v - (1 shl stored) else v).toDouble()
        }
    }

    /** PS3.3 C.11.2.1.2.1 linear windowing straight onto 0..255 (edge.core.imageio._apply_window). */
    private fun window(x: DoubleArray, centre: Double, widthIn: Double): DoubleArray {
        val width = maxOf(widthIn, 1.0)
        val div = if (width > 1) width - 1 else 1.0
        return DoubleArray(x.size) { i -> (((x[i] - (centre - 0.5)) / div + 0.5) * 255.0).coerceIn(0.0, 255.0) }
    }

    private fun minMax(x: DoubleArray): DoubleArray {
        val lo = x.min()
        val hi = x.max()
        if (hi <= lo) return DoubleArray(x.size)
        val k = 255.0 / (hi - lo)
        return DoubleArray(x.size) { i -> (x[i] - lo) * k }
    }
}
