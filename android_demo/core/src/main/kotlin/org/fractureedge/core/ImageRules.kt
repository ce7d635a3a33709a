package org.fractureedge.core

/** An image the phone does not decode itself; [message] says what to do instead. */
class UnsupportedImageException(message: String) : Exception(message)

/**
 * Decoded pixels in Bitmap.getPixels layout (row-major 0xAARRGGBB), and for DICOM the grey values
 * themselves (0..255 doubles, unrounded) that the classifier uses instead, as Python does.
 */
class Pixels(val argb: IntArray, val width: Int, val height: Int, val grey: DoubleArray? = null) {
    init {
        require(width > 0 && height > 0 && argb.size == width * height) { "pixel array has ${argb.size} values for ${width}x$height" }
        require(grey == null || grey.size == argb.size) { "grey has ${grey?.size} values for ${width}x$height" }
    }
}

/** What a file is, from its first bytes (never its name), as edge.core.imageio.sniff decides. */
enum class ImageKind { JPEG, PNG, WEBP, BMP, DICOM, TIFF }

object ImageFormats {
    /** Bytes to read before calling [kind]: the DICOM preamble is 128 bytes, then "DICM". */
    const val HEADER_BYTES = 132

    fun kind(head: ByteArray): ImageKind? {
        fun at(i: Int, vararg v: Int) = head.size >= i + v.size && v.indices.all { (head[i + it].toInt() and 0xFF) == v[it] }
        return when {
            at(0, 0xFF, 0xD8, 0xFF) -> ImageKind.JPEG
            at(0, 0x89, 'P'.code, 'N'.code, 'G'.code) -> ImageKind.PNG
            at(0, 'R'.code, 'I'.code, 'F'.code, 'F'.code) && at(8, 'W'.code, 'E'.code, 'B'.code, 'P'.code) -> ImageKind.WEBP
            at(128, 'D'.code, 'I'.code, 'C'.code, 'M'.code) -> ImageKind.DICOM
            at(0, 'B'.code, 'M'.code) -> ImageKind.BMP
            at(0, 'I'.code, 'I'.code, 42, 0) || at(0, 'M'.code, 'M'.code, 0, 42) -> ImageKind.TIFF
            else -> null
        }
    }

    /**
     * Refuses what only the server decodes, with the message the report and the screen show.
     * (16-bit PNG is read by [Png16Reader], not by Android's decoder, which would cut it to 8 bits.)
     */
    fun requirePhoneDecodable(head: ByteArray): ImageKind {
        val kind = kind(head) ?: throw UnsupportedImageException("not a JPEG, PNG, WebP, BMP or DICOM image (unknown format)")
        if (kind == ImageKind.TIFF) throw UnsupportedImageException("TIFF is decoded by the server only: send it to edge serve")
        return kind
    }
}

/**
 * Decode-time downsampling (BitmapFactory's inSampleSize): the largest power of two that keeps
 * at least twice the model input on each axis, so bilinear letterboxing still sees every detail
 * the model can use while a 12 MP photo costs a quarter or less of its full-size memory.
 * Python decodes at full size; the difference this makes is within the device report's gates.
 */
object DecodeSampling {
    fun inSampleSize(srcWidth: Int, srcHeight: Int, modelWidth: Int, modelHeight: Int): Int {
        require(srcWidth > 0 && srcHeight > 0 && modelWidth > 0 && modelHeight > 0) { "sizes must be positive" }
        var s = 1
        while (srcWidth / (s * 2) >= 2 * modelWidth && srcHeight / (s * 2) >= 2 * modelHeight) s *= 2
        return s
    }
}

/**
 * EXIF orientation (tag 0x0112, values 1..8) applied to pixels, as Pillow's
 * ImageOps.exif_transpose does on the Python side, so both sides see the photo upright.
 */
object ExifOrientation {
    fun apply(p: Pixels, orientation: Int): Pixels {
        if (orientation !in 2..8) return p
        val w = p.width
        val h = p.height
        val swap = orientation >= 5
        val ow = if (swap) h else w
        val oh = if (swap) w else h
        val out = IntArray(w * h)
        for (y in 0 until oh) {
            for (x in 0 until ow) {
                val (sx, sy) =
                    when (orientation) {
                        2 -> (w - 1 - x) to y

                        // mirror horizontal
                        3 -> (w - 1 - x) to (h - 1 - y)

                        // rotate 180
                        4 -> x to (h - 1 - y)

                        // mirror vertical
                        5 -> y to x

                        // transpose
                        6 -> y to (h - 1 - x)

                        // rotate 90 clockwise
                        7 -> (w - 1 - y) to (h - 1 - x)

                        // transverse
                        else -> (w - 1 - y) to x // 8: rotate 90 counter-clockwise
                    }
                out[y * ow + x] = p.argb[sy * w + sx]
            }
        }
        return Pixels(out, ow, oh)
    }
}
