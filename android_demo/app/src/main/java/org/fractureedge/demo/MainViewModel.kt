package org.fractureedge.demo

import android.app.Application
import android.graphics.Bitmap
import android.net.Uri
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import java.util.Locale
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.Classification
import org.fractureedge.core.Failures
import org.fractureedge.core.FractureTypeLine
import org.fractureedge.core.Heatmap
import org.fractureedge.core.ServerClient
import org.fractureedge.core.ServerException
import org.fractureedge.core.ServerPrediction
import org.fractureedge.core.SpecException
import org.fractureedge.core.UnsupportedImageException

/** Everything the main screen shows. */
data class UiState(
    val modelStatus: String? = null,
    val busy: String? = null,
    val image: Bitmap? = null,
    val overlay: Bitmap? = null,
    val local: Classification? = null,
    /** The secondary fracture-type line under [local]'s finding (setting on, positive finding only). */
    val typeLine: String? = null,
    val server: ServerPrediction? = null,
    val error: String? = null,
    val message: String? = null
)

/**
 * The screen's state and actions. Model work goes through [ModelHost] (one thread);
 * decoding and network on Dispatchers.IO; heatmap blending on Dispatchers.Default.
 * Server failures never touch the local result: the app keeps working offline.
 */
class MainViewModel(app: Application) : AndroidViewModel(app) {
    private val settings = Settings(app)
    private val host = ModelHost(app)
    private val validation = ValidationRunner(app, host)
    private val _state = MutableStateFlow(UiState())
    val state: StateFlow<UiState> = _state.asStateFlow()

    init {
        loadModel(reload = false)
    }

    /** The settings the loaded model was made with: accelerator preference and CPU threads. */
    private var loadedWith: Pair<AcceleratorPreference, Int>? = null

    private fun wanted(): Pair<AcceleratorPreference, Int> = settings.accelerator to settings.resolvedThreads()

    fun reloadIfPreferenceChanged() {
        if (loadedWith != null && loadedWith != wanted()) loadModel(reload = true)
    }

    /** (Re)loads the model, e.g. after the accelerator or thread setting changed. */
    fun loadModel(reload: Boolean = true) {
        val (preference, threads) = wanted().also { loadedWith = it }
        viewModelScope.launch {
            _state.update { it.copy(busy = app().getString(R.string.model_loading)) }
            try {
                val m = host.load(preference, threads, reload)
                _state.update { it.copy(modelStatus = Texts.modelStatus(m), busy = null) }
            } catch (e: Throwable) {
                if (!Failures.recoverable(e)) throw e
                val msg = Texts.failure("The model could not be loaded", e)
                _state.update { it.copy(modelStatus = msg, busy = null, error = msg) }
            }
        }
    }

    fun onImage(uri: Uri) {
        val (preference, threads) = wanted()
        viewModelScope.launch {
            _state.update {
                it.copy(
                    busy = app().getString(R.string.classifying),
                    error = null,
                    message = null,
                    overlay = null,
                    server = null,
                    typeLine = null
                )
            }
            val size = host.current()?.spec?.preprocess
            val decoded =
                try {
                    withContext(Dispatchers.IO) { Images.decode(app().contentResolver, uri, size?.width ?: 224, size?.height ?: 224) }
                } catch (e: Throwable) {
                    if (!Failures.recoverable(e)) throw e
                    _state.update { it.copy(busy = null, error = Texts.failure("Could not read the image", e)) }
                    return@launch
                }
            _state.update { it.copy(image = decoded.bitmap, local = null) }
            try {
                val r = host.classify(decoded.pixels, preference, threads)
                val status = host.current()?.let { Texts.modelStatus(it) }
                _state.update { it.copy(local = r, busy = null, modelStatus = status ?: it.modelStatus) }
                askFractureType(decoded.bitmap, r)
            } catch (e: Throwable) {
                if (!Failures.recoverable(e)) throw e
                _state.update { it.copy(busy = null, error = Texts.failure("Classification failed", e)) }
            }
        }
    }

    /**
     * The fracture type, asked of the server (`types=true`) only when the user turned it on and only
     * beside a positive finding on the phone. The local result is already on screen; any failure becomes
     * the secondary line's text ("Type: not available (...)"), never an error over the finding.
     */
    private fun askFractureType(bitmap: Bitmap, local: Classification) {
        val fractured = local.prediction.decision
        if (!FractureTypeLine.shouldAsk(settings.showFractureType, fractured)) return
        val url = settings.serverUrl
        val debug = settings.debugBuild
        viewModelScope.launch {
            _state.update { if (it.local === local) it.copy(typeLine = app().getString(R.string.asking_fracture_type)) else it }
            val line =
                try {
                    val answer =
                        withContext(Dispatchers.IO) {
                            ServerClient.requireSecureTransport(url, debug)
                            ServerClient(url, settings.token).predict(Images.jpeg(bitmap), "image.jpg", "image/jpeg", types = true)
                        }
                    FractureTypeLine.text(fractured, answer.fractureType, answer.fractureTypeProblem)
                } catch (e: Throwable) {
                    if (!Failures.recoverable(e)) throw e
                    FractureTypeLine.text(fractured, null, if (e is ServerException) e.message else Failures.describe(e))
                }
            // Another image may have replaced this one meanwhile: its line is not this one.
            _state.update { if (it.local === local) it.copy(typeLine = line) else it }
        }
    }

    /** Asks the server for a heatmap. Any failure becomes a message; the local result stays. */
    fun explain() {
        val bitmap = _state.value.image
        if (bitmap == null) {
            _state.update { it.copy(error = app().getString(R.string.pick_image_first)) }
            return
        }
        val url = settings.serverUrl
        val debug = settings.debugBuild
        viewModelScope.launch {
            _state.update { it.copy(busy = app().getString(R.string.explaining), error = null, message = null) }
            try {
                val answer =
                    withContext(Dispatchers.IO) {
                        ServerClient.requireSecureTransport(url, debug)
                        val client = ServerClient(url, settings.token)
                        client.explain(Images.jpeg(bitmap), "image.jpg", "image/jpeg")
                    }
                val grid = answer.heatmap ?: throw ServerException.MalformedResponse("no heatmap in the answer")
                val overlay =
                    withContext(Dispatchers.Default) {
                        val w = bitmap.width
                        val h = bitmap.height
                        Images.fromPixels(Heatmap.overlay(Images.pixels(bitmap).argb, w, h, grid), w, h)
                    }
                _state.update { it.copy(busy = null, server = answer, overlay = overlay) }
            } catch (e: Throwable) {
                if (!Failures.recoverable(e)) throw e
                val msg = if (e is ServerException) e.message else Texts.failure("Explain failed", e)
                _state.update { it.copy(busy = null, error = msg) }
            }
        }
    }

    fun validate(treeUri: Uri) {
        val (preference, threads) = wanted()
        viewModelScope.launch {
            _state.update { it.copy(busy = app().getString(R.string.listing_folder), error = null, message = null) }
            try {
                val summary =
                    withContext(Dispatchers.IO) {
                        validation.run(treeUri, preference, threads) { done, total ->
                            _state.update { it.copy(busy = app().getString(R.string.validating, done, total)) }
                        }
                    }
                val status = host.current()?.let { Texts.modelStatus(it) }
                _state.update { it.copy(busy = null, message = Texts.validation(summary), modelStatus = status ?: it.modelStatus) }
            } catch (e: Throwable) {
                if (!Failures.recoverable(e)) throw e
                val msg =
                    when (e) {
                        is ModelUnavailableException -> e.message
                        is SecurityException -> "No permission for that folder: ${Failures.describe(e)}"
                        else -> Texts.failure("Validation failed", e)
                    }
                _state.update { it.copy(busy = null, error = msg) }
            }
        }
    }

    fun dismissMessages() = _state.update { it.copy(error = null, message = null) }

    private fun app(): Application = getApplication()

    override fun onCleared() {
        host.close()
    }
}

/** Human-readable lines for the screen (kept out of the Activity). */
object Texts {
    fun modelStatus(m: LoadedModel): String {
        val acc = if (m.accelerator.wire == "gpu") "GPU delegate" else "CPU, XNNPACK, ${m.threads} threads"
        val fallback = m.fallbackFrom?.let { "$it; " } ?: ""
        return "$fallback${m.choice.modelFile} (${m.spec.precision}) on $acc — ${m.choice.reason}; spec ${m.specOrigin}"
    }

    /** "What failed: why" in one line, whatever was thrown (the app never crashes on a failed action). */
    fun failure(what: String, e: Throwable): String = when (e) {
        is ModelUnavailableException -> e.message ?: what
        is UnsupportedImageException -> "$what: ${e.message}"
        is SpecException -> "$what: the model's spec does not fit: ${e.message}"
        else -> "$what: ${Failures.describe(e)}"
    }

    fun local(r: Classification): String {
        val p = r.prediction
        val lines = mutableListOf<String>()
        lines += "On the phone: ${p.label}" + (p.decision?.let { d -> if (d) "  (positive)" else "  (negative)" } ?: "")
        for (s in p.topK) lines += String.format(Locale.US, "  %-16s %6.1f %%", s.label, s.probability * 100)
        val pPos = p.positiveProbability
        val threshold = p.threshold
        if (pPos != null && threshold != null) {
            lines += String.format(Locale.US, "  P(positive) %.3f vs threshold %.2f", pPos, threshold)
        }
        lines +=
            String.format(
                Locale.US,
                "  inference %.1f ms, total %.1f ms, %s",
                r.inferenceMs,
                r.totalMs,
                r.accelerator.wire.uppercase(Locale.US)
            )
        return lines.joinToString("\n")
    }

    fun server(p: ServerPrediction): String {
        val lines = mutableListOf<String>()
        lines += "Server (${p.modelId}): ${p.label}"
        for ((label, prob) in p.probabilities) lines += String.format(Locale.US, "  %-16s %6.1f %%", label, prob * 100)
        p.timingsMs["total"]?.let { lines += String.format(Locale.US, "  server time %.1f ms", it) }
        p.heatmap?.let { lines += "  heatmap: ${it.method}, ${it.rows}x${it.cols} grid" + (it.targetLabel?.let { t -> " for $t" } ?: "") }
        return lines.joinToString("\n")
    }

    fun validation(s: ValidationSummary): String {
        val acc = if (s.images == 0) 0.0 else 100.0 * s.correct / s.images
        val head =
            String.format(
                Locale.US,
                "Validated %d images: %.1f %% agree with their folder label, mean inference %.1f ms.\nReport: %s",
                s.images,
                acc,
                s.meanLatencyMs,
                s.reportLocation
            )
        val withFallback = s.fallback?.let { "$head\nThe CPU model produced every entry: $it." } ?: head
        return if (s.failed.isEmpty()) {
            withFallback
        } else {
            withFallback + "\nRecorded as failures in the report (${s.failed.size}):\n" + s.failed.take(5).joinToString("\n")
        }
    }
}
