package org.fractureedge.demo

import android.content.Context
import android.content.res.AssetManager
import android.graphics.Bitmap
import android.util.Log
import java.io.Closeable
import java.io.FileInputStream
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import java.util.concurrent.Executors
import kotlin.math.min
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.withContext
import org.fractureedge.core.Accelerator
import org.fractureedge.core.AcceleratorChooser
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.AcceleratorProbe
import org.fractureedge.core.Classification
import org.fractureedge.core.Classifier
import org.fractureedge.core.DeviceReport
import org.fractureedge.core.MissingModelException
import org.fractureedge.core.ModelChoice
import org.fractureedge.core.ModelSpec
import org.fractureedge.core.SpecException

/** The model that is loaded, for the status line and the device report. */
data class LoadedModel(
    val choice: ModelChoice,
    val spec: ModelSpec,
    val sha256: String,
    val threads: Int,
    /** Set when the first choice failed and this is the CPU fallback. */
    val fallbackFrom: String? = null
) {
    val accelerator: Accelerator get() = choice.accelerator
}

/** Loading the model failed; [message] is fit for the screen. */
class ModelUnavailableException(message: String, cause: Throwable? = null) : Exception(message, cause)

/**
 * Owns the classifier and the one thread all model work runs on (loading, preprocessing,
 * inference, closing). Every public call hops onto that thread.
 */
class ModelHost(private val assets: AssetManager, private val probe: AcceleratorProbe = LiteRtGpuProbe()) : Closeable {
    constructor(context: Context) : this(context.applicationContext.assets)

    private val executor = Executors.newSingleThreadExecutor { r -> Thread(r, "fracture-model") }
    private val dispatcher = executor.asCoroutineDispatcher()
    private var classifier: Classifier? = null
    private var loaded: LoadedModel? = null
    private val cpuThreads = min(4, Runtime.getRuntime().availableProcessors()).coerceAtLeast(1)

    /** Loads (or reloads, when [reload]) the model for [preference]. */
    suspend fun load(preference: AcceleratorPreference, reload: Boolean = false): LoadedModel = withContext(dispatcher) {
        loaded?.takeIf { !reload }?.let { return@withContext it }
        release()
        val available = assets.list("")?.toSet().orEmpty()
        val first =
            try {
                AcceleratorChooser.choose(probe, available, preference)
            } catch (e: MissingModelException) {
                throw ModelUnavailableException(e.message ?: "no model", e)
            }
        try {
            open(first, null)
        } catch (e: Exception) {
            if (first.accelerator != Accelerator.GPU) throw unavailable(first, e)
            Log.w(TAG, "GPU path failed, falling back to CPU", e)
            val cpu = AcceleratorChooser.fallbackToCpu(available) ?: throw unavailable(first, e)
            try {
                open(cpu, "GPU failed (${e.message}); ")
            } catch (e2: Exception) {
                throw unavailable(cpu, e2)
            }
        }
    }

    private fun unavailable(choice: ModelChoice, e: Throwable): ModelUnavailableException {
        val what =
            when (e) {
                is SpecException -> "its spec does not fit: ${e.message}"
                is IOException -> "it cannot be read: ${e.message}"
                else -> "${e.javaClass.simpleName}: ${e.message}"
            }
        return ModelUnavailableException("Cannot load ${choice.modelFile}: $what", e)
    }

    private fun open(choice: ModelChoice, fallbackFrom: String?): LoadedModel {
        val spec = ModelSpec.parse(assets.open(choice.specFile).use { it.readBytes().toString(Charsets.UTF_8) })
        val sha = DeviceReport.sha256Hex(assets.open(choice.modelFile).use { it.readBytes() })
        val engine = LiteRtEngine(mapAsset(choice.modelFile), spec, choice.accelerator, cpuThreads)
        classifier = Classifier(spec, engine)
        return LoadedModel(choice, spec, sha, engine.threads, fallbackFrom).also { loaded = it }
    }

    /** Memory-maps an uncompressed asset (build.gradle.kts keeps .tflite uncompressed). */
    private fun mapAsset(name: String): ByteBuffer = assets.openFd(name).use { fd ->
        FileInputStream(fd.fileDescriptor).use { stream ->
            stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }

    /** Classifies [bitmap] on the model thread (pixels are read there too). */
    suspend fun classify(bitmap: Bitmap, preference: AcceleratorPreference): Classification {
        load(preference)
        return withContext(dispatcher) {
            val c = classifier ?: throw ModelUnavailableException("The model is not loaded.")
            val w = bitmap.width
            val h = bitmap.height
            val pixels = IntArray(w * h)
            bitmap.getPixels(pixels, 0, w, 0, 0, w, h)
            try {
                c.classify(pixels, w, h)
            } catch (e: RuntimeException) {
                // A GPU delegate can also fail at run time: switch to the CPU model once.
                if (c.accelerator != Accelerator.GPU) throw e
                Log.w(TAG, "GPU inference failed, falling back to CPU", e)
                release()
                val cpu = AcceleratorChooser.fallbackToCpu(assets.list("")?.toSet().orEmpty()) ?: throw e
                open(cpu, "GPU failed (${e.message}); ")
                classifier!!.classify(pixels, w, h)
            }
        }
    }

    private fun release() {
        classifier?.close()
        classifier = null
        loaded = null
    }

    /** Closes the interpreter on its own thread, then stops the thread. */
    override fun close() {
        executor.execute { release() }
        executor.shutdown()
    }

    private companion object {
        const val TAG = "ModelHost"
    }
}
