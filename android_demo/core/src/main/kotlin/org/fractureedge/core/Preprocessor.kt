package org.fractureedge.core

import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.floor
import kotlin.math.min

/** Where the resized image sits inside the model's input canvas. */
data class Letterbox(val top: Int, val left: Int, val height: Int, val width: Int)

/** Every stage of preprocessing, kept so tests can compare each one with the Python side. */
class PreparedInput(
    /** H*W grey canvas, values 0..255. */
    val u8: IntArray,
    /** H*W*C NHWC float input, before quantisation. */
    val floats: FloatArray,
    /** The bytes to hand to the interpreter: quantized values, or float32 in native order. */
    val tensorBytes: ByteArray,
    val letterbox: Letterbox
)

/**
 * Turns ARGB pixels (IntArray in Bitmap.getPixels layout, row-major 0xAARRGGBB) into the
 * model input described by [ModelSpec.preprocess] and [ModelSpec.input]. Same algorithm
 * as the Python side (`edge`): grey, letterbox, bilinear with half-pixel centres, rounding
 * to uint8, (x - mean) / std in float32, then quantisation. Double until the uint8 step, as in Python.
 */
class Preprocessor(private val spec: ModelSpec) {
    private val pre = spec.preprocess

    fun prepare(argb: IntArray, width: Int, height: Int, order: ByteOrder = ByteOrder.nativeOrder()): PreparedInput =
        prepareGrey(toGrey(argb, width, height), width, height, order)

    /** From grey values 0..255 (a DICOM frame), skipping step 1. */
    fun prepareGrey(grey: DoubleArray, width: Int, height: Int, order: ByteOrder = ByteOrder.nativeOrder()): PreparedInput {
        require(width > 0 && height > 0 && grey.size == width * height) { "grey array has ${grey.size} values for ${width}x$height" }
        val box = letterboxFor(height, width, pre.height, pre.width)
        val u8 = letterboxU8(grey, width, height, box)
        val floats = normalize(u8)
        val bytes = if (spec.input.dtype.isQuantized) quantize(floats) else floatBytes(floats, order)
        return PreparedInput(u8, floats, bytes, box)
    }

    /** Step 3 and 4: bilinear resize into the canvas pre-filled with pad_value. */
    fun letterboxU8(
        grey: DoubleArray,
        width: Int,
        height: Int,
        box: Letterbox = letterboxFor(height, width, pre.height, pre.width)
    ): IntArray {
        val canvas = IntArray(pre.height * pre.width) { pre.padValue }
        val xs = BilinearAxis.of(width, box.width)
        val ys = BilinearAxis.of(height, box.height)
        for (y in 0 until box.height) {
            val y0 = ys.i0[y]
            val y1 = ys.i1[y]
            val fy = ys.f[y]
            val row0 = y0 * width
            val row1 = y1 * width
            val outRow = (box.top + y) * pre.width + box.left
            for (x in 0 until box.width) {
                val x0 = xs.i0[x]
                val x1 = xs.i1[x]
                val fx = xs.f[x]
                val v =
                    (1 - fy) * ((1 - fx) * grey[row0 + x0] + fx * grey[row0 + x1]) +
                        fy * ((1 - fx) * grey[row1 + x0] + fx * grey[row1 + x1])
                canvas[outRow + x] = floor(v + 0.5).toInt().coerceIn(0, 255)
            }
        }
        return canvas
    }

    private val meanF = FloatArray(pre.channels) { pre.mean[it].toFloat() }
    private val stdF = FloatArray(pre.channels) { pre.std[it].toFloat() }

    /**
     * Step 5: NHWC floats, grey replicated into every channel. In float32 like numpy's
     * `(u8.astype(float32) - mean_f32) / std_f32`: in double a caffe mean such as 103.939
     * lands one float32 step away.
     */
    fun normalize(u8: IntArray): FloatArray {
        val c = pre.channels
        val out = FloatArray(u8.size * c)
        for (i in u8.indices) {
            val v = u8[i].toFloat()
            for (ch in 0 until c) {
                out[i * c + ch] = (v - meanF[ch]) / stdF[ch]
            }
        }
        return out
    }

    /** Step 6: q = clamp(floor(x / scale + 0.5) + zero_point). Bytes are two's complement for int8. */
    fun quantize(floats: FloatArray): ByteArray {
        val t = spec.input
        require(t.dtype.isQuantized) { "input dtype ${t.dtype.wire} is not quantized" }
        return ByteArray(floats.size) { i ->
            val q = floor(floats[i].toDouble() / t.scale + 0.5).toInt() + t.zeroPoint
            q.coerceIn(t.dtype.qMin, t.dtype.qMax).toByte()
        }
    }

    private fun floatBytes(floats: FloatArray, order: ByteOrder): ByteArray {
        val buf = ByteBuffer.allocate(floats.size * 4).order(order)
        buf.asFloatBuffer().put(floats)
        return buf.array()
    }

    companion object {
        /** Step 1: grey = 0.299 R + 0.587 G + 0.114 B, alpha ignored. */
        fun toGrey(argb: IntArray, width: Int, height: Int): DoubleArray {
            require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
            require(argb.size >= width * height) { "pixel array has ${argb.size} values for ${width}x$height" }
            return DoubleArray(width * height) { i ->
                val p = argb[i]
                val r = (p shr 16) and 0xFF
                val g = (p shr 8) and 0xFF
                val b = p and 0xFF
                0.299 * r + 0.587 * g + 0.114 * b
            }
        }

        /** Step 2: scale to fit, centre, integer offsets. */
        fun letterboxFor(srcH: Int, srcW: Int, dstH: Int, dstW: Int): Letterbox {
            val s = min(dstH.toDouble() / srcH, dstW.toDouble() / srcW)
            val nh = floor(srcH * s + 0.5).toInt().coerceAtLeast(1).coerceAtMost(dstH)
            val nw = floor(srcW * s + 0.5).toInt().coerceAtLeast(1).coerceAtMost(dstW)
            return Letterbox(top = (dstH - nh) / 2, left = (dstW - nw) / 2, height = nh, width = nw)
        }
    }
}

/** Source index pairs and weights along one axis of a bilinear resize (half-pixel centres,
 *  clamped): shared by the model preprocessing and the heatmap upsampling. */
internal class BilinearAxis(val i0: IntArray, val i1: IntArray, val f: DoubleArray) {
    companion object {
        fun of(src: Int, dst: Int): BilinearAxis {
            val i0 = IntArray(dst)
            val i1 = IntArray(dst)
            val f = DoubleArray(dst)
            for (o in 0 until dst) {
                val s = ((o + 0.5) * src / dst - 0.5).coerceIn(0.0, (src - 1).toDouble())
                val lo = floor(s).toInt()
                i0[o] = lo
                i1[o] = min(lo + 1, src - 1)
                f[o] = s - lo
            }
            return BilinearAxis(i0, i1, f)
        }
    }
}
