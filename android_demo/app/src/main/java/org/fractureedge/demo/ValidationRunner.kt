package org.fractureedge.demo

import android.content.ContentResolver
import android.content.Context
import android.net.Uri
import android.os.Build
import android.provider.DocumentsContract
import android.provider.DocumentsContract.Document
import java.io.File
import java.io.IOException
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.DeviceInfo
import org.fractureedge.core.DeviceReport
import org.fractureedge.core.ReportImage
import org.fractureedge.core.ReportModel
import org.fractureedge.core.ValidationPlan

/** What a validation run produced. */
data class ValidationSummary(
    val images: Int,
    val failed: List<String>,
    val correct: Int,
    val meanLatencyMs: Double,
    val reportLocation: String
)

/**
 * Validation mode: runs every image in the label subfolders of a folder the user picked
 * (Storage Access Framework tree) and writes the device-report JSON for `edge validate
 * --device-report`. Images that cannot be decoded are listed, not fatal.
 */
class ValidationRunner(private val context: Context, private val host: ModelHost) {
    private val resolver: ContentResolver = context.contentResolver

    suspend fun run(treeUri: Uri, preference: AcceleratorPreference, progress: (done: Int, total: Int) -> Unit): ValidationSummary {
        val model = host.load(preference)
        val files = listFiles(treeUri)
        val plan = ValidationPlan.fromRelativePaths(files.keys)
        if (plan.isEmpty()) {
            throw IOException("No images in label subfolders (e.g. fractured/*.jpg, not_fractured/*.jpg) of the picked folder.")
        }
        val images = mutableListOf<ReportImage>()
        val failed = mutableListOf<String>()
        var correct = 0
        plan.forEachIndexed { i, item ->
            progress(i, plan.size)
            try {
                val bitmap = Images.decode(resolver, files.getValue(item.path))
                val r = host.classify(bitmap, preference)
                bitmap.recycle()
                images += ReportImage(item.path, item.label, r.prediction.probabilities, r.inferenceMs)
                if (r.prediction.label == item.label) correct++
            } catch (e: IOException) {
                failed += "${item.path}: ${e.message}"
            }
        }
        progress(plan.size, plan.size)
        val report =
            DeviceReport(
                model = ReportModel(model.choice.modelFile, model.sha256, model.spec.bundleSha256, model.spec.precision),
                device =
                    DeviceInfo(
                        manufacturer = Build.MANUFACTURER,
                        model = Build.MODEL,
                        androidSdk = Build.VERSION.SDK_INT,
                        abi = Build.SUPPORTED_ABIS.firstOrNull() ?: "unknown"
                    ),
                accelerator = model.accelerator,
                threads = model.threads,
                created = DeviceReport.timestamp(System.currentTimeMillis()),
                images = images
            )
        val location = write(treeUri, report.toJson())
        val mean = if (images.isEmpty()) 0.0 else images.sumOf { it.latencyMs } / images.size
        return ValidationSummary(images.size, failed, correct, mean, location)
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

    /** Writes device-report.json into the picked folder, else into the app's external files. */
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
            // Read-only provider: fall back to app storage below.
        }
        val dir = context.getExternalFilesDir(null) ?: context.filesDir
        val file = File(dir, REPORT_NAME)
        file.writeText(json)
        return file.absolutePath
    }

    private companion object {
        const val REPORT_NAME = "device-report.json"
        const val MAX_DEPTH = 3
    }
}
