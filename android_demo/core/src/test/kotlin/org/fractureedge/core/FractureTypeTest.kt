package org.fractureedge.core

import org.json.JSONObject
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

/** Parsing of `fracture_type` (strict, never at the expense of the fracture result) and the secondary line. */
class FractureTypeTest {
    // Shaped like edge serve's answer to types=true (edge/app/server/engine.py TypeModel.answer);
    // LiveServerTest parses the real thing.
    private val statement =
        "top-1 0.21 ± 0.04 (top-3 0.49) in grouped cross-validation on 488 web pictures; chance is 1/10 = 0.10, " +
            "always answering the most frequent type 0.15; a guess, not a finding"

    private fun typeJson(): JSONObject = JSONObject(
        """{"model": {"id": "bone-break-types-linear-head", "sha256": "${"ab".repeat(32)}"},
            "label": "fracture_dislocation",
            "probabilities": {"avulsion": 0.1, "comminuted": 0.2, "fracture_dislocation": 0.4, "spiral": 0.3},
            "top3": ["fracture_dislocation", "spiral", "comminuted"],
            "cv_top1": 0.21, "cv_top3": 0.49, "cv_macro_f1": 0.18, "weak": true,
            "accuracy": ${JSONObject.quote(statement)}}"""
    )

    private fun body(type: Any?, decision: Boolean = true): String {
        val o = JSONObject(
            """{"model": {"id": "m", "sha256": "s"}, "task": "binary", "label": "fractured",
               "probabilities": {"fractured": 0.71, "not_fractured": 0.29}, "positive_probability": 0.71,
               "threshold": 0.35, "decision": $decision, "timings_ms": {"total": 25.0, "types": 4.0}}"""
        )
        if (type != null) o.put("fracture_type", type)
        return o.toString()
    }

    private fun parsed(type: Any?, asked: Boolean = true) = ServerResponse.parsePrediction(body(type), typesAsked = asked)

    private fun assertFractureResultIntact(p: ServerPrediction) {
        assertEquals("fractured", p.label)
        assertEquals(0.71, p.probabilities.getValue("fractured"), 1e-12)
        assertEquals(true, p.decision)
        assertEquals(0.35, p.threshold!!, 1e-12)
    }

    @Test
    fun wellFormedTypeIsParsed() {
        val p = parsed(typeJson())
        assertFractureResultIntact(p)
        assertNull(p.fractureTypeProblem)
        val t = p.fractureType!!
        assertEquals("fracture_dislocation", t.label)
        assertEquals(listOf("avulsion", "comminuted", "fracture_dislocation", "spiral"), t.probabilities.keys.toList())
        assertEquals(listOf("fracture_dislocation", "spiral", "comminuted"), t.top3)
        assertEquals(0.21, t.cvTop1!!, 1e-12)
        assertEquals(0.49, t.cvTop3!!, 1e-12)
        assertEquals(0.18, t.cvMacroF1!!, 1e-12)
        assertTrue(t.weak)
        assertEquals(statement, t.accuracy)
        assertEquals("bone-break-types-linear-head", t.modelId)
    }

    @Test
    fun notAskedMeansNotRead() {
        // A server that sends the field unasked is ignored: the app shows a type only when the user turned it on.
        val p = parsed(typeJson(), asked = false)
        assertNull(p.fractureType)
        assertNull(p.fractureTypeProblem)
        assertNull(FractureTypeLine.text(p))
    }

    @Test
    fun askedButAbsentSaysSo() {
        val p = parsed(null)
        assertFractureResultIntact(p)
        assertNull(p.fractureType)
        assertEquals("the server sent no fracture type", p.fractureTypeProblem)
        assertEquals("Type: not available (the server sent no fracture type)", FractureTypeLine.text(p))
    }

    /** Each mutation of a good field, with a word its reason must contain. */
    private val malformed: List<Pair<(JSONObject) -> Any?, String>> =
        listOf(
            { _: JSONObject -> "spiral" } to "a string, not an object",
            { _: JSONObject -> JSONObject.NULL } to "null, not an object",
            { o: JSONObject -> o.apply { put("weak", "false") } } to "weak is a string",
            { o: JSONObject -> o.apply { put("weak", 0) } } to "weak is a number",
            { o: JSONObject -> o.apply { remove("accuracy") } } to "accuracy is missing",
            { o: JSONObject -> o.apply { put("accuracy", 0.21) } } to "accuracy is a number",
            { o: JSONObject -> o.apply { put("accuracy", "x".repeat(401)) } } to "401 characters",
            { o: JSONObject -> o.apply { put("accuracy", "top-1 0.9\u202E") } } to "control or formatting",
            { o: JSONObject -> o.apply { put("label", "spiral\nfracture confirmed") } } to "control or formatting",
            { o: JSONObject -> o.apply { put("label", "greenstick") } } to "has no probability",
            { o: JSONObject -> o.apply { put("label", "avulsion") } } to "not the most probable",
            { o: JSONObject -> o.apply { remove("label") } } to "label is missing",
            { o: JSONObject -> o.apply { getJSONObject("probabilities").put("spiral", "0.3") } } to "not a number",
            { o: JSONObject -> o.apply { getJSONObject("probabilities").put("spiral", 1.3) } } to "outside [0, 1]",
            { o: JSONObject -> o.apply { getJSONObject("probabilities").put("spiral", 0.0) } } to "sum to",
            { o: JSONObject -> o.apply { put("probabilities", JSONObject((0 until 65).associate { "t$it" to 1.0 / 65 })) } } to "65 types",
            { o: JSONObject -> o.apply { put("cv_top1", "0.9") } } to "cv_top1 is a string",
            { o: JSONObject -> o.apply { put("cv_top1", 1.7) } } to "outside [0, 1]",
            { o: JSONObject -> o.apply { put("top3", "spiral") } } to "not a list",
            { o: JSONObject -> o.apply { getJSONArray("top3").put(3, "avulsion") } } to "4 entries",
            { o: JSONObject -> o.apply { getJSONArray("top3").put(1, "greenstick") } } to "without a probability",
            { o: JSONObject -> o.apply { getJSONArray("top3").put(0, "avulsion") } } to "does not start with the label",
            { o: JSONObject -> o.apply { put("model", JSONObject().put("sha256", "not-hex")) } } to "64 hex digits"
        )

    @Test
    fun malformedTypeIsDroppedAndTheFractureResultKept() {
        for ((i, case) in malformed.withIndex()) {
            val (mutate, reason) = case
            val p = parsed(mutate(typeJson()))
            assertFractureResultIntact(p)
            assertNull("case $i ($reason) was accepted", p.fractureType)
            val problem = p.fractureTypeProblem ?: ""
            assertTrue(
                "case $i: '$problem' should mention '$reason'",
                problem.startsWith("the server's fracture type is malformed") && reason in problem
            )
            // The screen then says the type is unavailable; it never shows the hostile text.
            val line = FractureTypeLine.text(p)!!
            assertTrue(line, line.startsWith("Type: not available ("))
        }
    }

    @Test
    fun unknownFieldsAndMissingOptionalOnesAreAccepted() {
        val o = typeJson().apply {
            put("calibrated", true)
            put("extra", JSONObject().put("x", 1))
            remove("top3")
            remove("model")
            put("cv_top3", JSONObject.NULL)
            remove("cv_macro_f1")
        }
        val t = parsed(o).fractureType!!
        assertEquals(emptyList<String>(), t.top3)
        assertNull(t.cvTop3)
        assertNull(t.cvMacroF1)
        assertEquals("", t.modelId)
    }

    @Test
    fun missingWeakReadsAsAGuess() {
        val t = parsed(typeJson().apply { remove("weak") }).fractureType!!
        assertTrue(t.weak)
    }

    @Test
    fun weakTypeLineIsMarkedAsAGuess() {
        val t = parsed(typeJson()).fractureType!!
        assertEquals("Type (guess): fracture dislocation — $statement", FractureTypeLine.text(true, t))
    }

    @Test
    fun strongTypeLineIsPlainButStillCarriesItsAccuracy() {
        val t = parsed(
            typeJson().apply {
                put("weak", false)
                put("cv_top1", 0.86)
                put("accuracy", "top-1 0.86 in grouped cross-validation")
            }
        ).fractureType!!
        assertEquals("Type: fracture dislocation — top-1 0.86 in grouped cross-validation", FractureTypeLine.text(true, t))
        // weak=false with no measured top-1 is still a guess
        val unmeasured = t.copy(cvTop1 = null)
        assertTrue(FractureTypeLine.text(true, unmeasured)!!.startsWith("Type (guess): fracture dislocation"))
    }

    @Test
    fun askedOnlyWithTheSettingOnAndAPositiveFinding() {
        assertTrue(FractureTypeLine.shouldAsk(settingOn = true, fractured = true))
        assertFalse(FractureTypeLine.shouldAsk(settingOn = false, fractured = true))
        assertFalse(FractureTypeLine.shouldAsk(settingOn = true, fractured = false))
        assertFalse(FractureTypeLine.shouldAsk(settingOn = true, fractured = null))
    }

    @Test
    fun noLineWithoutAPositiveFracture() {
        val t = parsed(typeJson()).fractureType!!
        assertNull("no fracture result", FractureTypeLine.text(null, t))
        assertNull("negative finding", FractureTypeLine.text(false, t))
        assertNull("negative finding, problem", FractureTypeLine.text(false, null, "unreachable"))
        assertNull("nothing asked", FractureTypeLine.text(true, null, null))
        val negative = ServerResponse.parsePrediction(body(typeJson(), decision = false), typesAsked = true)
        assertNotNull(negative.fractureType)
        assertNull(FractureTypeLine.text(negative))
    }
}
