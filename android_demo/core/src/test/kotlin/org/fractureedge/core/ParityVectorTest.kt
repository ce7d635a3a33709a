package org.fractureedge.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.abs
import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume
import org.junit.Test
import org.junit.runner.RunWith
import org.junit.runners.Parameterized

/** One case of a parity-vector manifest written by `edge parity-vectors --out DIR`. */
class VectorCase(val dir: File, val spec: ModelSpec, val tolerance: JSONObject, val case: JSONObject) {
    val name: String get() = case.getString("name")

    fun bytes(key: String): ByteArray = File(dir, case.getString(key)).readBytes()

    override fun toString(): String = "${spec.modelId}-${spec.precision}/$name"

    companion object {
        /**
         * Finds manifests: DIR/manifest.json, else DIR/<sub>/manifest.json. A manifest may be
         * one object or a list of objects (several specs).
         */
        fun load(root: File): List<VectorCase> {
            require(root.isDirectory) { "EDGE_VECTORS_DIR=$root is not a directory" }
            val top = File(root, "manifest.json")
            val manifests =
                if (top.isFile) {
                    listOf(top)
                } else {
                    root.listFiles().orEmpty().sortedBy { it.name }.map { File(it, "manifest.json") }.filter { it.isFile }
                }
            val out = mutableListOf<VectorCase>()
            for (m in manifests) {
                val text = m.readText().trim()
                val entries = if (text.startsWith("[")) {
                    JSONArray(text).let { a ->
                        (0 until a.length()).map { a.getJSONObject(it) }
                    }
                } else {
                    listOf(JSONObject(text))
                }
                for (e in entries) {
                    require(e.optString("format") == "fracture-edge/parity-vectors") { "$m: format is '${e.optString("format")}'" }
                    require(e.optInt("version") == 1) { "$m: version ${e.optInt("version")} is not supported" }
                    val spec = ModelSpec.fromJson(e.getJSONObject("spec"))
                    val tol = e.optJSONObject("tolerance") ?: JSONObject()
                    val cases = e.getJSONArray("cases")
                    for (i in 0 until cases.length()) out += VectorCase(m.parentFile, spec, tol, cases.getJSONObject(i))
                }
            }
            require(out.isNotEmpty()) { "EDGE_VECTORS_DIR=$root holds no parity cases (no manifest.json with cases)" }
            return out
        }
    }
}

/**
 * Kotlin core against the Python reference on real radiographs: the u8 canvas, the float
 * input, the quantized input and the postprocessing of the interpreter's raw output.
 */
@RunWith(Parameterized::class)
class ParityVectorTest(private val vc: VectorCase?) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): Collection<Array<Any?>> = params { true }

        /** The cases matching [keep], or one null case that skips or fails by [TestEnv] when no vectors are set. */
        fun params(keep: (VectorCase) -> Boolean): Collection<Array<Any?>> {
            val dir = TestEnv.get("EDGE_VECTORS_DIR") ?: return listOf(arrayOf<Any?>(null))
            return VectorCase.load(File(dir)).filter(keep).map { arrayOf<Any?>(it) }
        }

        fun require(vc: VectorCase?): VectorCase {
            if (vc == null) {
                TestEnv.require("EDGE_VECTORS_DIR", "EDGE_SKIP_VECTORS")
                Assume.assumeTrue("no vectors", false)
            }
            return vc!!
        }

        fun prepared(c: VectorCase): PreparedInput {
            val w = c.case.getInt("width")
            val h = c.case.getInt("height")
            val raw = c.bytes("argb")
            assertEquals("argb file size of ${c.name}", w * h * 4, raw.size)
            val pixels = IntArray(w * h)
            ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(pixels)
            return Preprocessor(c.spec).prepare(pixels, w, h, ByteOrder.LITTLE_ENDIAN)
        }
    }

    private fun case(): VectorCase = require(vc)

    /** Indices where the u8 canvas matches the reference exactly. */
    private fun u8Matches(c: VectorCase, got: IntArray): BooleanArray {
        val want = c.bytes("letterbox_u8")
        assertEquals("u8 canvas size", want.size, got.size)
        return BooleanArray(want.size) { (want[it].toInt() and 0xFF) == got[it] }
    }

    @Test
    fun letterboxU8MatchesPython() {
        val c = case()
        val got = prepared(c).u8
        val want = c.bytes("letterbox_u8")
        val maxDiff = c.tolerance.optInt("u8_max_diff", 1)
        val maxFraction = c.tolerance.optDouble("u8_mismatch_fraction", 0.001)
        var mismatches = 0
        var worst = 0
        for (i in want.indices) {
            val d = abs((want[i].toInt() and 0xFF) - got[i])
            if (d != 0) mismatches++
            if (d > worst) worst = d
        }
        assertTrue("${c.name}: largest u8 difference $worst > $maxDiff", worst <= maxDiff)
        val fraction = mismatches.toDouble() / want.size
        assertTrue("${c.name}: $mismatches of ${want.size} u8 values differ ($fraction > $maxFraction)", fraction <= maxFraction)
    }

    @Test
    fun floatInputMatchesPython() {
        val c = case()
        val p = prepared(c)
        val want = ByteBuffer.wrap(c.bytes("input_f32")).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
        assertEquals("float input length", want.remaining(), p.floats.size)
        val matched = u8Matches(c, p.u8)
        val tol = c.tolerance.optDouble("input_f32_abs", 1e-5)
        val ch = c.spec.preprocess.channels
        var checked = 0
        for (i in p.floats.indices) {
            if (!matched[i / ch]) continue
            val d = abs(want.get(i) - p.floats[i])
            assertTrue("${c.name}: float input [$i] ${p.floats[i]} vs ${want.get(i)}", d <= tol)
            checked++
        }
        assertTrue("${c.name}: no float value compared", checked > 0)
    }
}

/** The quantized input, for the cases of quantized models (int8/uint8 input). */
@RunWith(Parameterized::class)
class ParityQuantizedTest(private val vc: VectorCase?) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): Collection<Array<Any?>> = ParityVectorTest.params { it.spec.input.dtype.isQuantized && it.case.has("input_q") }
    }

    @Test
    fun quantizedInputMatchesPython() {
        val c = ParityVectorTest.require(vc)
        val got = ParityVectorTest.prepared(c).tensorBytes
        val want = c.bytes("input_q")
        assertEquals("quantized input length", want.size, got.size)
        val signed = c.spec.input.dtype == DType.INT8
        val tol = c.tolerance.optInt("quantized_max_diff", 1)
        for (i in want.indices) {
            val a = if (signed) want[i].toInt() else want[i].toInt() and 0xFF
            val b = if (signed) got[i].toInt() else got[i].toInt() and 0xFF
            assertTrue("${c.name}: quantized [$i] $b vs $a", abs(a - b) <= tol)
        }
    }
}

/** Postprocessing of LiteRT's raw output, for the cases of real models (preprocessing-only specs have none). */
@RunWith(Parameterized::class)
class ParityOutputTest(private val vc: VectorCase?) {
    companion object {
        @JvmStatic
        @Parameterized.Parameters(name = "{0}")
        fun cases(): Collection<Array<Any?>> = ParityVectorTest.params { it.case.has("output_raw") }
    }

    @Test
    fun postprocessingMatchesPython() {
        val c = ParityVectorTest.require(vc)
        val pred = Postprocessor(c.spec).fromRaw(c.bytes("output_raw"), ByteOrder.LITTLE_ENDIAN)
        val expected = c.case.getJSONObject("expected")
        val probs = expected.getJSONObject("probabilities")
        val tol = c.tolerance.optDouble("prob_abs", 1e-6)
        assertEquals("${c.name}: labels", probs.keys().asSequence().toSet(), pred.probabilities.keys)
        for (label in probs.keys()) {
            val want = probs.getDouble(label)
            val got = pred.probabilities.getValue(label)
            assertTrue("${c.name}: P($label) $got vs $want", abs(want - got) <= tol)
        }
        assertEquals("${c.name}: label", expected.getString("label"), pred.label)
        if (expected.has("decision") && !expected.isNull("decision")) {
            assertEquals("${c.name}: decision", expected.getBoolean("decision"), pred.decision)
        }
    }
}
