package org.fractureedge.core

import org.json.JSONArray
import org.json.JSONObject

/**
 * `fracture_type` from `/v1/predict?types=true`: the server's fracture-type model, a weak one
 * (top-1 about 0.2 in cross-validation on 10 types). [accuracy] is the sentence from its card
 * that must travel with the label; [weak] says the measured accuracy makes it a guess.
 */
data class FractureType(
    val modelId: String,
    val modelSha256: String,
    val label: String,
    val probabilities: Map<String, Double>,
    val top3: List<String>,
    val cvTop1: Double?,
    val cvTop3: Double?,
    val cvMacroF1: Double?,
    val weak: Boolean,
    val accuracy: String
) {
    /** A guess when the server says so, and also when no accuracy was measured at all. */
    val isGuess: Boolean get() = weak || cvTop1 == null
}

/**
 * Reads `fracture_type` as sent by a server that may be broken or hostile: every field's JSON type is
 * checked (org.json would turn "0.9" or "false" into numbers and booleans), sizes are bounded, and
 * text that will reach the screen may not carry control or bidi-format characters. Unknown fields are
 * ignored. Any problem throws [IllegalArgumentException] with a short reason; the caller keeps the
 * fracture result and drops only the type.
 */
internal object FractureTypeParser {
    const val MAX_CLASSES = 64
    const val MAX_LABEL_CHARS = 64
    const val MAX_ACCURACY_CHARS = 400
    const val MAX_MODEL_ID_CHARS = 128
    private val SHA256 = Regex("[0-9a-f]{64}")

    fun parse(value: Any?): FractureType {
        require(value is JSONObject) { "fracture_type is ${jsonKind(value)}, not an object" }
        val o: JSONObject = value
        val probsJson = o.opt("probabilities")
        require(probsJson is JSONObject) { "probabilities is ${jsonKind(probsJson)}, not an object" }
        require(probsJson.length() in 2..MAX_CLASSES) { "${probsJson.length()} types (expected 2..$MAX_CLASSES)" }
        val probabilities = LinkedHashMap<String, Double>()
        for (key in probsJson.keys()) {
            checkText(key, "a type name", MAX_LABEL_CHARS)
            probabilities[key] = unit(probsJson.opt(key), "probability of '$key'")
        }
        val sum = probabilities.values.sum()
        require(sum in 0.99..1.01) { "probabilities sum to $sum, not 1" }

        val label = text(o.opt("label"), "label", MAX_LABEL_CHARS)
        val p = requireNotNull(probabilities[label]) { "label '$label' has no probability" }
        require(probabilities.values.all { it <= p + 1e-9 }) { "label '$label' is not the most probable type" }

        val top3 =
            when (val t = o.opt("top3")) {
                null, JSONObject.NULL -> emptyList()

                is JSONArray -> {
                    require(t.length() in 1..3) { "top3 has ${t.length()} entries" }
                    (0 until t.length()).map { i -> text(t.opt(i), "top3[$i]", MAX_LABEL_CHARS) }
                }

                else -> throw IllegalArgumentException("top3 is ${jsonKind(t)}, not a list")
            }
        require(top3.all { it in probabilities }) { "top3 names a type without a probability" }
        require(top3.toSet().size == top3.size) { "top3 repeats a type" }
        require(top3.isEmpty() || top3[0] == label) { "top3 does not start with the label" }

        // A server that does not say whether its type is weak is read as weak: the safe side.
        val weak =
            when (val w = o.opt("weak")) {
                null, JSONObject.NULL -> true
                is Boolean -> w
                else -> throw IllegalArgumentException("weak is ${jsonKind(w)}, not true or false")
            }
        var modelId = ""
        var sha = ""
        when (val model = o.opt("model")) {
            null, JSONObject.NULL -> Unit

            is JSONObject -> {
                modelId = optText(model, "id", "model id", MAX_MODEL_ID_CHARS) ?: ""
                sha = optText(model, "sha256", "model sha256", 64) ?: ""
                require(sha.isEmpty() || SHA256.matches(sha)) { "model sha256 is not 64 hex digits" }
            }

            else -> throw IllegalArgumentException("model is ${jsonKind(model)}, not an object")
        }
        return FractureType(
            modelId = modelId,
            modelSha256 = sha,
            label = label,
            probabilities = probabilities,
            top3 = top3,
            cvTop1 = optUnit(o, "cv_top1"),
            cvTop3 = optUnit(o, "cv_top3"),
            cvMacroF1 = optUnit(o, "cv_macro_f1"),
            weak = weak,
            // Without its accuracy sentence a type is not shown at all.
            accuracy = text(o.opt("accuracy"), "accuracy", MAX_ACCURACY_CHARS)
        )
    }

    private fun optText(o: JSONObject, key: String, what: String, maxChars: Int): String? {
        val v = o.opt(key)
        return if (v == null || v == JSONObject.NULL) null else text(v, what, maxChars)
    }

    // Missing or null means "not measured"; the line then calls the type a guess whatever `weak` says.
    private fun optUnit(o: JSONObject, key: String): Double? {
        val v = o.opt(key)
        return if (v == null || v == JSONObject.NULL) null else unit(v, key)
    }

    private fun unit(v: Any?, what: String): Double {
        require(v is Number) { "$what is ${jsonKind(v)}, not a number" }
        val d = v.toDouble()
        require(d.isFinite() && d in 0.0..1.0 + 1e-6) { "$what is $d, outside [0, 1]" }
        return d.coerceAtMost(1.0)
    }

    private fun text(v: Any?, what: String, maxChars: Int): String {
        require(v is String) { "$what is ${jsonKind(v)}, not a string" }
        checkText(v, what, maxChars)
        return v
    }

    // Cc: control characters (newlines would break the one line); Cf: bidi overrides, zero-width marks.
    private val HIDDEN = Regex("[\\p{Cc}\\p{Cf}]")

    private fun checkText(s: String, what: String, maxChars: Int) {
        require(s.isNotBlank()) { "$what is empty" }
        require(s.length <= maxChars) { "$what is ${s.length} characters (at most $maxChars)" }
        require(!HIDDEN.containsMatchIn(s)) { "$what contains control or formatting characters" }
    }

    private fun jsonKind(v: Any?): String = when (v) {
        null -> "missing"
        JSONObject.NULL -> "null"
        is JSONObject -> "an object"
        is JSONArray -> "a list"
        is String -> "a string"
        is Boolean -> "a boolean"
        is Number -> "a number"
        else -> v.javaClass.simpleName
    }
}

/**
 * The secondary line shown under a fracture finding when the user turned fracture types on.
 * It exists only beside a positive finding: no line without a fracture result, and none under a
 * negative one (a type under "not fractured" would read as a finding of its own).
 */
object FractureTypeLine {
    const val GUESS_PREFIX = "Type (guess):"
    const val PREFIX = "Type:"

    /** Whether to ask the server at all: the user's setting (off by default) and a positive finding. */
    fun shouldAsk(settingOn: Boolean, fractured: Boolean?): Boolean = settingOn && fractured == true

    /**
     * [fractured]: the finding the line sits under (null: no fracture result, or a model without a
     * yes/no decision). [type] and [problem] come from the same server answer: the parsed type, or
     * why there is none (a malformed field, an unreachable server).
     */
    fun text(fractured: Boolean?, type: FractureType?, problem: String? = null): String? {
        if (fractured != true) return null
        if (type == null) return problem?.let { "$PREFIX not available ($it)" }
        val prefix = if (type.isGuess) GUESS_PREFIX else PREFIX
        return "$prefix ${type.label.replace('_', ' ')} — ${type.accuracy}"
    }

    /** The same for a server answer (its own finding and type). */
    fun text(p: ServerPrediction): String? = text(p.decision, p.fractureType, p.fractureTypeProblem)
}
