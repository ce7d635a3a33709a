package org.fractureedge.core

import java.io.File
import java.util.Locale
import kotlin.math.abs
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/**
 * Core's client against a real `edge serve` (.ci/run starts it). Needs EDGE_SERVER_URL,
 * EDGE_SERVER_TOKEN and EDGE_SAMPLE_IMAGE; skipped only with EDGE_SKIP_SERVER=1.
 * The model's labels come from EDGE_MODEL_SPEC (a spec JSON), else the parity-vector
 * manifest in EDGE_VECTORS_DIR, else a "labels" list in the server's /v1/model card.
 */
class LiveServerTest {
    private fun url() = TestEnv.require("EDGE_SERVER_URL", "EDGE_SKIP_SERVER")

    private fun token() = TestEnv.require("EDGE_SERVER_TOKEN", "EDGE_SKIP_SERVER")

    private fun image(): File {
        val f = File(TestEnv.require("EDGE_SAMPLE_IMAGE", "EDGE_SKIP_SERVER"))
        assertTrue("EDGE_SAMPLE_IMAGE=$f is not a file", f.isFile)
        return f
    }

    private fun client() = ServerClient(url(), token(), connectTimeoutMs = 5_000, readTimeoutMs = 120_000)

    private fun contentType(f: File) = if (f.name.lowercase().endsWith(".png")) "image/png" else "image/jpeg"

    private fun labels(c: ServerClient): List<String> {
        TestEnv.get("EDGE_MODEL_SPEC")?.let { return ModelSpec.parse(File(it).readText()).labels }
        TestEnv.get("EDGE_VECTORS_DIR")?.let { dir -> VectorCase.load(File(dir)).firstOrNull()?.let { return it.spec.labels } }
        findLabels(JSONObject(c.modelCard()))?.let { return it }
        fail("no model labels: set EDGE_MODEL_SPEC or EDGE_VECTORS_DIR, or serve a model card with a \"labels\" list")
        throw IllegalStateException()
    }

    private fun findLabels(o: JSONObject): List<String>? {
        o.optJSONArray("labels")?.let { a -> return (0 until a.length()).map { a.getString(it) } }
        for (key in o.keys()) {
            val child = o.opt(key)
            if (child is JSONObject) findLabels(child)?.let { return it }
        }
        return null
    }

    private fun checkPrediction(p: ServerPrediction, labels: List<String>) {
        assertTrue("label '${p.label}' is one of $labels", p.label in labels)
        assertEquals("probabilities cover the labels", labels.toSet(), p.probabilities.keys)
        for ((k, v) in p.probabilities) assertTrue("P($k) = $v in [0, 1]", v in 0.0..1.0)
        assertTrue("probabilities sum to 1: ${p.probabilities}", abs(p.probabilities.values.sum() - 1.0) < 1e-3)
        p.positiveProbability?.let { assertTrue(it in 0.0..1.0) }
    }

    @Test
    fun predictOnRealServer() {
        val c = client()
        val f = image()
        val p = c.predict(f.readBytes(), f.name, contentType(f))
        checkPrediction(p, labels(c))
    }

    @Test
    fun predictWithoutTypesHasNoTypeOnRealServer() {
        val f = image()
        val p = client().predict(f.readBytes(), f.name, contentType(f))
        assertEquals(null, p.fractureType)
        assertEquals(null, p.fractureTypeProblem)
        assertEquals(null, FractureTypeLine.text(true, p.fractureType, p.fractureTypeProblem))
    }

    /** edge serve loads the embedded `types` bundle by default (--types types): its real answer parses. */
    @Test
    fun fractureTypeOnRealServer() {
        val c = client()
        val f = image()
        val plain = c.predict(f.readBytes(), f.name, contentType(f))
        val p = c.predict(f.readBytes(), f.name, contentType(f), types = true)
        assertEquals("the fracture answer does not change with types=true", plain.probabilities, p.probabilities)
        assertEquals(plain.decision, p.decision)
        assertEquals("parsed without a problem", null, p.fractureTypeProblem)
        val t = checkNotNull(p.fractureType) { "types=true answered without fracture_type" }
        assertTrue("label '${t.label}' is one of ${t.probabilities.keys}", t.label in t.probabilities)
        assertTrue("10 types: ${t.probabilities.keys}", t.probabilities.size == 10)
        assertEquals(t.label, t.top3.first())
        assertEquals(3, t.top3.size)
        assertTrue("probabilities sum to 1", abs(t.probabilities.values.sum() - 1.0) < 1e-3)
        val top1 = checkNotNull(t.cvTop1) { "the embedded types bundle has a measured top-1" }
        assertTrue("cv top-1 $top1 <= top-3 ${t.cvTop3}", top1 <= (t.cvTop3 ?: 1.0))
        assertTrue("64 hex digits: ${t.modelSha256}", t.modelSha256.matches(Regex("[0-9a-f]{64}")))
        // The card's statement names the measured top-1; weak is what the card says (the shipped one is weak).
        assertTrue(t.accuracy, t.accuracy.contains(String.format(Locale.US, "top-1 %.2f", top1)))
        assertEquals(t.weak, t.accuracy.contains("a guess, not a finding"))
        val line = checkNotNull(FractureTypeLine.text(true, t)) { "a positive finding gets a line" }
        val prefix = if (t.weak) "Type (guess): " else "Type: "
        assertEquals(prefix + t.label.replace('_', ' ') + " — " + t.accuracy, line)
        assertEquals("under the server's own finding (${p.decision})", if (p.decision == true) line else null, FractureTypeLine.text(p))
    }

    @Test
    fun explainOnRealServer() {
        val c = client()
        val f = image()
        val p = c.explain(f.readBytes(), f.name, contentType(f))
        checkPrediction(p, labels(c))
        val h = checkNotNull(p.heatmap) { "explain answered without a heatmap" }
        assertEquals("grid values count matches grid_shape", h.rows * h.cols, h.values.size)
        assertTrue(h.values.all { it in 0f..1f })
        assertEquals("the app asks for the grid only (overlay=false): no PNG", null, h.pngBase64)
        // The overlay works on the parsed grid at the image's size.
        val out = Heatmap.overlay(IntArray(64 * 48) { Fixtures.argb(90, 90, 90) }, 64, 48, h)
        assertEquals(64 * 48, out.size)
    }

    @Test
    fun wrongTokenIsUnauthorizedOnRealServer() {
        val f = image()
        try {
            ServerClient(url(), token() + "-wrong").predict(f.readBytes(), f.name, contentType(f))
            fail("a wrong token was accepted")
        } catch (e: ServerException.Unauthorized) {
            assertTrue(e.message!!.contains("401"))
        }
    }

    @Test
    fun healthzAnswers() {
        assertTrue("GET /healthz", client().healthy())
    }
}
