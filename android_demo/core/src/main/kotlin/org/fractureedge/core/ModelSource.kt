package org.fractureedge.core

/**
 * The spec of a .tflite: the copy embedded in the file (`fracture_edge_spec`) when there is one,
 * else the JSON sidecar. `edge convert` writes the sidecar as a byte-for-byte copy of the embedded
 * spec (its `created` time differs between runs), so a sidecar that differs from the embedded spec
 * means the .tflite and the .json come from different runs and is refused instead of giving wrong
 * answers. The file's own sha256 is what the phone reports (`edge validate --device-report` checks
 * it against the model it compares). Older sidecars that still carry `tflite_sha256` are checked
 * against the file.
 */
object ModelSource {
    class Resolved(val spec: ModelSpec, val sha256: String, val specOrigin: String)

    fun resolve(modelName: String, model: ByteArray, sidecarJson: String?): Resolved {
        val sha = DeviceReport.sha256Hex(model)
        val sidecar =
            try {
                sidecarJson?.let { org.json.JSONObject(it) }
            } catch (e: org.json.JSONException) {
                throw SpecException("${ModelFiles.specFor(modelName)} is not valid JSON: ${e.message}")
            }
        val want = sidecar?.optString("tflite_sha256", "").orEmpty()
        if (want.isNotEmpty() && !want.equals(sha, ignoreCase = true)) {
            throw mismatch(modelName, "its sha256 is ${sha.take(12)}…, the .json says ${want.take(12)}…")
        }
        val embedded = TfliteMetadata.find(model, TfliteMetadata.SPEC_ENTRY)
        if (embedded != null) {
            val text = String(embedded, Charsets.UTF_8)
            if (sidecarJson != null && want.isEmpty() && sidecarJson.trimEnd() != text.trimEnd()) {
                val (a, b) = DeviceReport.sha256Hex(embedded) to DeviceReport.sha256Hex(sidecarJson.trimEnd().toByteArray())
                throw mismatch(modelName, "its embedded spec (sha256 ${a.take(12)}…) differs from the .json (sha256 ${b.take(12)}…)")
            }
            return Resolved(ModelSpec.parse(text), sha, "embedded in $modelName")
        }
        val side = sidecar ?: throw SpecException("$modelName carries no embedded spec and its .json spec is missing")
        return Resolved(ModelSpec.fromJson(side), sha, "${ModelFiles.specFor(modelName)} (sidecar)")
    }

    private fun mismatch(modelName: String, why: String) =
        SpecException("$modelName does not match its spec: $why (copy the .tflite and its .json from the same `edge convert` run)")
}
