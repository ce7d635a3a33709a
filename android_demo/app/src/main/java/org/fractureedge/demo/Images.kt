package org.fractureedge.demo

import android.content.ContentResolver
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.media.ExifInterface
import android.net.Uri
import java.io.ByteArrayOutputStream
import java.io.IOException
import org.fractureedge.core.DecodeSampling
import org.fractureedge.core.DicomReader
import org.fractureedge.core.ExifOrientation
import org.fractureedge.core.ImageFormats
import org.fractureedge.core.ImageKind
import org.fractureedge.core.Pixels
import org.fractureedge.core.Png16Reader

/** A decoded image: the pixels the classifier reads and the bitmap the screen shows. */
class DecodedImage(val pixels: Pixels, val bitmap: Bitmap)

/**
 * Decoding into upright pixels with the rules in core/ (tested on the JVM): the format from
 * the content (TIFF refused: the server decodes it), DICOM and 16-bit PNG by core's readers,
 * photos downsampled on decode to no less than twice the model input, EXIF orientation applied
 * as Pillow does. Nothing is logged or written: the image stays in memory.
 */
object Images {
    fun decode(resolver: ContentResolver, uri: Uri, modelWidth: Int, modelHeight: Int): DecodedImage {
        val head = open(resolver, uri).use { it.readNBytesCompat(ImageFormats.HEADER_BYTES) }
        val kind = ImageFormats.requirePhoneDecodable(head)
        if (kind == ImageKind.DICOM || Png16Reader.isPng16(head)) {
            val bytes = open(resolver, uri).use { it.readBytes() }
            val grey = if (kind == ImageKind.DICOM) DicomReader.read(bytes) else Png16Reader.read(bytes)
            val pixels = grey.toPixels()
            return DecodedImage(pixels, fromPixels(pixels.argb, pixels.width, pixels.height))
        }
        val bounds = BitmapFactory.Options().apply { inJustDecodeBounds = true }
        open(resolver, uri).use { BitmapFactory.decodeStream(it, null, bounds) }
        if (bounds.outWidth <= 0 || bounds.outHeight <= 0) {
            throw IOException("this file is not an image the phone can decode (${bounds.outMimeType ?: "unknown type"})")
        }
        val options =
            BitmapFactory.Options().apply {
                inSampleSize = DecodeSampling.inSampleSize(bounds.outWidth, bounds.outHeight, modelWidth, modelHeight)
                inPreferredConfig = Bitmap.Config.ARGB_8888
            }
        val raw =
            open(resolver, uri).use { BitmapFactory.decodeStream(it, null, options) }
                ?: throw IOException("the image could not be decoded")
        val orientation = if (kind == ImageKind.BMP) ExifInterface.ORIENTATION_NORMAL else orientation(resolver, uri)
        val pixels = ExifOrientation.apply(pixels(raw), orientation)
        raw.recycle()
        return DecodedImage(pixels, fromPixels(pixels.argb, pixels.width, pixels.height))
    }

    private fun open(resolver: ContentResolver, uri: Uri) = resolver.openInputStream(uri) ?: throw IOException("cannot open the file")

    private fun java.io.InputStream.readNBytesCompat(n: Int): ByteArray {
        val out = ByteArray(n)
        var got = 0
        while (got < n) {
            val r = read(out, got, n - got)
            if (r < 0) break
            got += r
        }
        return out.copyOf(got)
    }

    private fun orientation(resolver: ContentResolver, uri: Uri): Int = try {
        open(resolver, uri).use {
            ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)
        }
    } catch (e: IOException) {
        ExifInterface.ORIENTATION_NORMAL
    }

    /**
     * JPEG of the upright bitmap, so the server sees exactly what the phone shows and the
     * heatmap grid lines up with it. Kept in memory only.
     */
    fun jpeg(bitmap: Bitmap, quality: Int = 92): ByteArray = ByteArrayOutputStream().use { out ->
        bitmap.compress(Bitmap.CompressFormat.JPEG, quality, out)
        out.toByteArray()
    }

    fun pixels(bitmap: Bitmap): Pixels = Pixels(
        IntArray(bitmap.width * bitmap.height).also {
            bitmap.getPixels(it, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        },
        bitmap.width,
        bitmap.height
    )

    fun fromPixels(argb: IntArray, width: Int, height: Int): Bitmap = Bitmap.createBitmap(argb, width, height, Bitmap.Config.ARGB_8888)
}
