package org.fractureedge.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Test

/**
 * The checked-in golden canvas (tests/golden/letterbox_373x454_64.json, written by a plain
 * per-pixel loop independent of both implementations): Kotlin must reproduce it exactly,
 * as tests/test_parity.py holds Python to it.
 */
class GoldenCanvasTest {
    @Test
    fun letterboxMatchesTheGoldenCanvas() {
        val golden = JSONObject(TestEnv.requireRepoFile("tests/golden/letterbox_373x454_64.json").readText())
        val src = golden.getJSONObject("source")
        val w = src.getInt("width")
        val h = src.getInt("height")
        val size = golden.getJSONArray("size")
        val specJson = Fixtures.binarySpecJson()
        specJson.getJSONObject("preprocess").put("size", size).put("pad_value", golden.getInt("pad_value"))
        specJson.getJSONObject("input").put("shape", JSONArray(listOf(1, size.getInt(0), size.getInt(1), 1)))
        val argb = IntArray(w * h) { i ->
            val x = i % w
            val y = i / w
            Fixtures.argb((3 * x + 5 * y) % 256, (x * y) % 251, (x + 2 * y) % 256)
        }
        val got = Preprocessor(ModelSpec.fromJson(specJson)).prepare(argb, w, h)
        val g = golden.getJSONObject("geometry")
        assertEquals(Letterbox(0, 5, 64, 53), got.letterbox) // by hand: 373 * 64 / 454 = 52.58 -> 53 wide, left (64 - 53) / 2
        assertEquals(Letterbox(g.getInt("top"), g.getInt("left"), g.getInt("height"), g.getInt("width")), got.letterbox)
        val rows = golden.getJSONArray("canvas")
        var differ = 0
        for (y in 0 until rows.length()) {
            val row = rows.getJSONArray(y)
            for (x in 0 until row.length()) if (row.getInt(x) != got.u8[y * size.getInt(1) + x]) differ++
        }
        assertEquals("pixels that differ from the golden canvas", 0, differ)
    }
}
