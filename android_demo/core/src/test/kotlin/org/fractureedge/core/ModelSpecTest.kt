package org.fractureedge.core

import org.json.JSONArray
import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

class ModelSpecTest {
    private fun rejects(json: JSONObject, fragment: String) {
        try {
            ModelSpec.fromJson(json)
            fail("accepted a spec that should fail with '$fragment'")
        } catch (e: SpecException) {
            assertTrue("message '${e.message}' mentions '$fragment'", e.message!!.contains(fragment))
        }
    }

    @Test
    fun parsesTheDocumentedExample() {
        val s = ModelSpec.parse(Fixtures.binarySpecJson().toString())
        assertEquals(Task.BINARY, s.task)
        assertEquals(listOf("fractured", "not_fractured"), s.labels)
        assertEquals("fractured", s.positiveLabel)
        assertEquals("not_fractured", s.negativeLabel)
        assertEquals(0.35, s.threshold, 0.0)
        assertEquals(224, s.preprocess.height)
        assertEquals(DType.UINT8, s.input.dtype)
        assertEquals(0.003921569, s.input.scale, 0.0)
        assertEquals(224 * 224, s.input.byteCount)
        assertEquals("sigmoid", s.output.activation)
        assertEquals("abc123", s.bundleSha256)
    }

    @Test
    fun ignoresUnknownKeys() {
        val o = Fixtures.binarySpecJson().put("future_field", JSONObject().put("x", 1))
        o.getJSONObject("preprocess").put("also_new", true)
        assertEquals("fracatlas-custom", ModelSpec.fromJson(o).modelId)
    }

    @Test
    fun parsesMulticlassFloat() {
        val s = Fixtures.multiclassSpec()
        assertEquals(Task.MULTICLASS, s.task)
        assertNull(s.positiveLabel)
        assertEquals(DType.FLOAT32, s.input.dtype)
        assertEquals(4 * 6 * 3 * 4, s.input.byteCount)
    }

    @Test
    fun rejectsWrongFormatOrVersion() {
        rejects(Fixtures.binarySpecJson().put("format", "other"), "format")
        rejects(Fixtures.binarySpecJson().put("version", 2), "version")
    }

    @Test
    fun rejectsBadChannelsAndMeanStd() {
        val o = Fixtures.binarySpecJson()
        o.getJSONObject("preprocess").put("channels", 2)
        rejects(o, "channels")
        val m = Fixtures.binarySpecJson()
        m.getJSONObject("preprocess").put("mean", JSONArray(listOf(0.0, 0.0, 0.0)))
        rejects(m, "mean")
        val s = Fixtures.binarySpecJson()
        s.getJSONObject("preprocess").put("std", JSONArray(listOf(1.0, 2.0)))
        rejects(s, "std")
    }

    @Test
    fun rejectsInputShapeThatDoesNotMatchPreprocess() {
        val o = Fixtures.binarySpecJson()
        o.getJSONObject("input").put("shape", JSONArray(listOf(1, 224, 224, 3)))
        rejects(o, "input.shape")
        val p = Fixtures.binarySpecJson()
        p.getJSONObject("preprocess").put("size", JSONArray(listOf(256, 224)))
        rejects(p, "input.shape")
    }

    @Test
    fun rejectsInconsistentLabelsAndOutputs() {
        rejects(Fixtures.binarySpecJson().put("positive_label", "broken"), "positive_label")
        rejects(Fixtures.binarySpecJson().put("labels", JSONArray(listOf("a", "b", "c"))), "2 labels")
        val o = Fixtures.multiclassSpecJson()
        o.getJSONObject("output").put("shape", JSONArray(listOf(1, 4)))
        rejects(o, "output.shape")
        rejects(Fixtures.binarySpecJson().put("threshold", 1.5), "threshold")
        rejects(Fixtures.binarySpecJson().apply { remove("threshold") }, "no threshold")
        rejects(Fixtures.binarySpecJson().put("threshold", org.json.JSONObject.NULL), "no threshold")
    }

    @Test
    fun rejectsBadDtypeAndQuantParams() {
        val o = Fixtures.binarySpecJson()
        o.getJSONObject("input").put("dtype", "float16")
        rejects(o, "dtype")
        val q = Fixtures.binarySpecJson()
        q.getJSONObject("input").put("scale", 0.0)
        rejects(q, "scale")
    }

    @Test
    fun rejectsMissingFieldsAndBadJson() {
        val o = Fixtures.binarySpecJson()
        o.remove("preprocess")
        rejects(o, "incomplete")
        try {
            ModelSpec.parse("{not json")
            fail()
        } catch (e: SpecException) {
            assertTrue(e.message!!.contains("not valid JSON"))
        }
    }
}
