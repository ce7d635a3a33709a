package org.fractureedge.core

import kotlin.math.abs
import kotlin.math.roundToInt

/** Colour map and overlay blending for the server's Grad-CAM grid, on ARGB IntArrays. */
object Heatmap {
    /**
     * Blue -> cyan -> yellow -> red ramp for v in 0..1 (a "jet"-style map built from three
     * clamped triangle functions), opaque ARGB.
     */
    fun colour(v: Float): Int {
        val x = v.coerceIn(0f, 1f) * 4f
        val r = channel(1.5f - abs(x - 3f))
        val g = channel(1.5f - abs(x - 2f))
        val b = channel(1.5f - abs(x - 1f))
        return (0xFF shl 24) or (r shl 16) or (g shl 8) or b
    }

    private fun channel(t: Float): Int = (t.coerceIn(0f, 1f) * 255f).roundToInt()

    /**
     * Samples [grid] stretched over a width x height image, bilinear with half-pixel centres
     * (the grid covers the image's full extent).
     */
    fun sample(grid: HeatmapGrid, width: Int, height: Int): FloatArray {
        require(width > 0 && height > 0) { "image is empty (${width}x$height)" }
        val out = FloatArray(width * height)
        val ya = BilinearAxis.of(grid.rows, height)
        val xa = BilinearAxis.of(grid.cols, width)
        val fxs = FloatArray(width) { xa.f[it].toFloat() }
        for (y in 0 until height) {
            val r0 = ya.i0[y] * grid.cols
            val r1 = ya.i1[y] * grid.cols
            val fy = ya.f[y].toFloat()
            for (x in 0 until width) {
                val fx = fxs[x]
                val top = (1 - fx) * grid.values[r0 + xa.i0[x]] + fx * grid.values[r0 + xa.i1[x]]
                val bottom = (1 - fx) * grid.values[r1 + xa.i0[x]] + fx * grid.values[r1 + xa.i1[x]]
                out[y * width + x] = (1 - fy) * top + fy * bottom
            }
        }
        return out
    }

    /**
     * Blends the colour-mapped grid over [argb]. Each pixel's blend weight is
     * [opacity] * value when [weightByValue] (cold regions stay clear), else [opacity].
     * Output is opaque ARGB of the same size.
     */
    fun overlay(
        argb: IntArray,
        width: Int,
        height: Int,
        grid: HeatmapGrid,
        opacity: Float = 0.5f,
        weightByValue: Boolean = true
    ): IntArray {
        require(argb.size >= width * height) { "pixel array has ${argb.size} values for ${width}x$height" }
        require(opacity in 0f..1f) { "opacity must be in 0..1, got $opacity" }
        val values = sample(grid, width, height)
        return IntArray(width * height) { i ->
            val v = values[i]
            val a = if (weightByValue) opacity * v else opacity
            blend(argb[i], colour(v), a)
        }
    }

    /** (1 - a) * base + a * top per channel, rounded; alpha forced opaque. */
    fun blend(base: Int, top: Int, a: Float): Int {
        val w = a.coerceIn(0f, 1f)
        fun mix(shift: Int): Int {
            val b = (base shr shift) and 0xFF
            val t = (top shr shift) and 0xFF
            return ((1 - w) * b + w * t).roundToInt().coerceIn(0, 255)
        }
        return (0xFF shl 24) or (mix(16) shl 16) or (mix(8) shl 8) or mix(0)
    }
}
