package org.fractureedge.demo

import android.content.ContentResolver
import android.content.Context
import android.net.Uri
import android.os.Build
import android.provider.DocumentsContract
import android.provider.DocumentsContract.Document
import java.io.File
import java.io.IOException
import kotlinx.coroutines.runBlocking
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.Classification
import org.fractureedge.core.DeviceInfo
import org.fractureedge.core.LabelledImage
import org.fractureedge.core.ModelSpec
import org.fractureedge.core.Pixels
import org.fractureedge.core.RunningModel
import org.fractureedge.core.Task
import org.fractureedge.core.ValidationBackend
import org.fractureedge.core.ValidationPlan
import org.fractureedge.core.ValidationRun

/** What a validation run produced. */
data class ValidationSummary(
    val images: Int,
    val failed: List<String>,
    val correct: Int,
    val meanLatencyMs: Double,
    val reportLocation: String,
    val fallback: String?
)

/**
 * Validation mode: runs every image in the label subfolders of a folder the user picked
 * (Storage Access Framework tree) through core's [ValidationRun] and writes the device-report
 * JSON for `edge validate --device-report`. Images that cannot be decoded (TIFF, compressed
 * DICOM: "send to server") are recorded as failures; a GPU-to-CPU fallback restarts the run
 * so the report names the model that produced every entry.
 */
class ValidationRunner(private val context: Context, private val host: ModelHost) {
    private val resolver: ContentResolver = context.contentResolver

    suspend fun run(
        treeUri: Uri,
        preference: AcceleratorPreference,
        cpuThreads: Int,
        progress: (done: Int, total: Int) -> Unit
    ): ValidationSummary {
        val model = host.load(preference, cpuThreads)
        val files = listFiles(treeUri)
        val plan = ValidationPlan.fromRelativePaths(files.keys)
        if (plan.isEmpty()) {
            throw IOException("No images in label subfolders (e.g. fractured/*.jpg, not_fractured/*.jpg) of the picked folder.")
        }
        val pre = model.spec.preprocess
        val backend =
            object : ValidationBackend {
                override fun current(): RunningModel = (host.current() ?: model).running()

                override fun decode(item: LabelledImage): Pixels =
                    Images.decode(resolver, files.getValue(item.path), pre.width, pre.height).also { it.bitmap.recycle() }.pixels

                // ValidationRun is synchronous; this runs on Dispatchers.IO, never on the main thread.
                override fun classify(pixels: Pixels): Classification = runBlocking { host.classify(pixels, preference, cpuThreads) }
            }
        val device = DeviceInfo(Build.MANUFACTURER, Build.MODEL, Build.VERSION.SDK_INT, Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown")
        val report = ValidationRun(backend).run(plan, device, progress)
        val location = write(treeUri, report.toJson())
        val spec = (host.current() ?: model).spec
        val correct = report.images.count { decided(spec, it.probabilities) == it.label }
        val mean = if (report.images.isEmpty()) 0.0 else report.images.sumOf { it.latencyMs } / report.images.size
        return ValidationSummary(
            report.images.size,
            report.failures.map {
                "${it.path}: ${it.error}"
            },
            correct,
            mean,
            location,
            report.fallback
        )
    }

    /** The label the app would show: the threshold decides for binary models, the top class otherwise. */
    private fun decided(spec: ModelSpec, p: Map<String, Double>): String? = if (spec.task == Task.BINARY) {
        if ((p[spec.positiveLabel] ?: 0.0) >= spec.threshold) spec.positiveLabel else spec.negativeLabel
    } else {
        p.maxByOrNull { it.value }?.key
    }

    /** All files under the tree, keyed by '/'-separated path relative to it (depth-limited). */
    private fun listFiles(treeUri: Uri): Map<String, Uri> {
        val out = LinkedHashMap<String, Uri>()
        fun walk(docId: String, prefix: String, depth: Int) {
            val children = DocumentsContract.buildChildDocumentsUriUsingTree(treeUri, docId)
            val columns = arrayOf(Document.COLUMN_DOCUMENT_ID, Document.COLUMN_DISPLAY_NAME, Document.COLUMN_MIME_TYPE)
            resolver.query(children, columns, null, null, null)?.use { c ->
                while (c.moveToNext()) {
                    val id = c.getString(0)
                    val name = c.getString(1)
                    val path = if (prefix.isEmpty()) name else "$prefix/$name"
                    if (c.getString(2) == Document.MIME_TYPE_DIR) {
                        if (depth < MAX_DEPTH) walk(id, path, depth + 1)
                    } else {
                        out[path] = DocumentsContract.buildDocumentUriUsingTree(treeUri, id)
                    }
                }
            } ?: throw IOException("cannot list the picked folder")
        }
        walk(DocumentsContract.getTreeDocumentId(treeUri), "", 0)
        return out
    }

    /** Writes device-report.json into the picked folder, else into the app's private files. */
    private fun write(treeUri: Uri, json: String): String {
        try {
            val parent = DocumentsContract.buildDocumentUriUsingTree(treeUri, DocumentsContract.getTreeDocumentId(treeUri))
            val doc = DocumentsContract.createDocument(resolver, parent, "application/json", REPORT_NAME)
            if (doc != null) {
                resolver.openOutputStream(doc)?.use { it.write(json.toByteArray(Charsets.UTF_8)) }
                    ?: throw IOException("cannot write $doc")
                return "the picked folder ($REPORT_NAME)"
            }
        } catch (e: Exception) {
            // Read-only provider (or a provider error): fall back to app storage below.
        }
        // App-private storage: the report names image files, which may carry patient names.
        val file = File(context.filesDir, REPORT_NAME)
        file.writeText(json)
        return file.absolutePath
    }

    private companion object {
        const val REPORT_NAME = "device-report.json"
        const val MAX_DEPTH = 3
    }
}
