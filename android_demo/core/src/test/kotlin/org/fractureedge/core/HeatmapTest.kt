package org.fractureedge.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class HeatmapTest {
    private fun grid(rows: Int, cols: Int, values: FloatArray) = HeatmapGrid("gradcam", "fractured", rows, cols, values, null)

    @Test
    fun colourRampEnds() {
        assertEquals(Fixtures.argb(0, 0, 128), Heatmap.colour(0f))
        assertEquals(Fixtures.argb(128, 0, 0), Heatmap.colour(1f))
        assertEquals(Fixtures.argb(128, 255, 128), Heatmap.colour(0.5f))
        assertEquals(Heatmap.colour(1f), Heatmap.colour(7f))
    }

    @Test
    fun zeroGridLeavesImageUnchangedWhenWeightedByValue() {
        val img = IntArray(6) { Fixtures.argb(it * 40, 10, 20) }
        val out = Heatmap.overlay(img, 3, 2, grid(1, 1, floatArrayOf(0f)))
        assertArrayEquals(img, out)
    }

    @Test
    fun fullOpacityGivesTheColour() {
        val img = IntArray(4) { Fixtures.argb(1, 2, 3) }
        val out = Heatmap.overlay(img, 2, 2, grid(1, 1, floatArrayOf(1f)), opacity = 1f)
        assertArrayEquals(IntArray(4) { Heatmap.colour(1f) }, out)
    }

    @Test
    fun gridIsStretchedOverTheImage() {
        // 1 x 2 grid [0, 1] over a 4-pixel-wide image: half-pixel centres give 0, 0.25, 0.75, 1.
        val v = Heatmap.sample(grid(1, 2, floatArrayOf(0f, 1f)), 4, 1)
        assertArrayEquals(floatArrayOf(0f, 0.25f, 0.75f, 1f), v, 1e-6f)
        val tall = Heatmap.sample(grid(2, 1, floatArrayOf(0f, 1f)), 1, 2)
        assertArrayEquals(floatArrayOf(0f, 1f), tall, 1e-6f)
    }

    @Test
    fun blendIsLinearAndOpaque() {
        val c = Heatmap.blend(Fixtures.argb(0, 100, 200, a = 0), Fixtures.argb(200, 100, 0), 0.5f)
        assertEquals(Fixtures.argb(100, 100, 100), c)
    }
}
