package org.fractureedge.core

import java.security.MessageDigest
import java.text.SimpleDateFormat
import java.util.Date
import java.util.Locale
import java.util.TimeZone
import org.json.JSONObject

data class DeviceInfo(val manufacturer: String, val model: String, val androidSdk: Int, val abi: String)

data class ReportModel(val file: String, val sha256: String, val bundleSha256: String, val precision: String)

data class ReportImage(
    /** Relative to the picked folder, '/'-separated, e.g. "fractured/IMG0000019.jpg". */
    val path: String,
    val label: String,
    val probabilities: Map<String, Double>,
    val latencyMs: Double
)

/** An image the phone could not decode or classify; [error] is the one-line reason. */
data class ReportFailure(val path: String, val label: String, val error: String)

/** The validation-mode result that `edge validate --device-report FILE` reads. */
data class DeviceReport(
    val model: ReportModel,
    val device: DeviceInfo,
    val accelerator: Accelerator,
    val threads: Int,
    val created: String,
    val images: List<ReportImage>,
    val failures: List<ReportFailure> = emptyList(),
    /** Why the GPU path was left for the CPU model that produced every entry, or null. */
    val fallback: String? = null
) {
    fun toJson(indent: Int = 2): String {
        val root = JSONObject()
        root.put("format", FORMAT)
        root.put("version", VERSION)
        root.put(
            "model",
            JSONObject()
                .put("file", model.file)
                .put("sha256", model.sha256)
                .put("bundle_sha256", model.bundleSha256)
                .put("precision", model.precision)
        )
        root.put(
            "device",
            JSONObject()
                .put("manufacturer", device.manufacturer)
                .put("model", device.model)
                .put("android_sdk", device.androidSdk)
                .put("abi", device.abi)
        )
        root.put("accelerator", accelerator.wire)
        root.put("threads", threads)
        root.put("created", created)
        val list = org.json.JSONArray()
        for (img in images) {
            val probs = JSONObject()
            for ((k, v) in img.probabilities) probs.put(k, finite(v, "probability of ${img.path}"))
            list.put(
                JSONObject()
                    .put("path", img.path)
                    .put("label", img.label)
                    .put("probabilities", probs)
                    .put("latency_ms", finite(img.latencyMs, "latency of ${img.path}"))
            )
        }
        root.put("images", list)
        val failed = org.json.JSONArray()
        for (f in failures) failed.put(JSONObject().put("path", f.path).put("label", f.label).put("error", f.error))
        root.put("failures", failed)
        root.put("fallback", fallback ?: JSONObject.NULL)
        return if (indent > 0) root.toString(indent) else root.toString()
    }

    private fun finite(v: Double, what: String): Double {
        require(v.isFinite()) { "$what is $v: JSON cannot hold it" }
        return v
    }

    companion object {
        const val FORMAT = "fracture-edge/device-report"
        const val VERSION = 1

        /** ISO-8601 UTC with seconds, e.g. 2026-11-26T16:00:00Z (no java.time: minSdk 24). */
        fun timestamp(millis: Long): String {
            val f = SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", Locale.US)
            f.timeZone = TimeZone.getTimeZone("UTC")
            return f.format(Date(millis))
        }

        fun sha256Hex(bytes: ByteArray): String = MessageDigest.getInstance("SHA-256").digest(bytes).joinToString("") { "%02x".format(it) }
    }
}

/** One image to validate: path relative to the picked folder and its label (the subfolder name). */
data class LabelledImage(val path: String, val label: String)

object ValidationPlan {
    /** Every format `edge validate` reads; TIFF and compressed DICOM become failures on the phone. */
    private val imageExtensions = setOf("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "dcm", "dicom", "dic")

    /**
     * Keeps image files that sit in a label subfolder: "fractured/a.jpg" -> label "fractured".
     * Files at the top level, hidden files and non-images are left out. Sorted by path.
     */
    fun fromRelativePaths(paths: Collection<String>): List<LabelledImage> = paths
        .map { it.replace('\\', '/').trim('/') }
        .filter { p ->
            val parts = p.split('/')
            parts.size >= 2 && parts.none { it.isEmpty() || it.startsWith(".") } &&
                p.substringAfterLast('.', "").lowercase() in imageExtensions
        }.distinct()
        .sorted()
        .map { LabelledImage(it, it.substringBefore('/')) }

    /** Labels in the plan that the model does not know (their images still run; `edge validate` decides). */
    fun unknownLabels(plan: List<LabelledImage>, spec: ModelSpec): Set<String> = plan.map { it.label }.toSet() - spec.labels.toSet()
}
