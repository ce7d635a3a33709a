package org.fractureedge.demo

import android.content.Context
import android.content.res.AssetManager
import android.util.Log
import java.io.Closeable
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.IOException
import java.nio.ByteBuffer
import java.nio.channels.FileChannel
import java.util.concurrent.Executors
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.withContext
import org.fractureedge.core.Accelerator
import org.fractureedge.core.AcceleratorChooser
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.AcceleratorProbe
import org.fractureedge.core.Classification
import org.fractureedge.core.Classifier
import org.fractureedge.core.Failures
import org.fractureedge.core.MissingModelException
import org.fractureedge.core.ModelChoice
import org.fractureedge.core.ModelSource
import org.fractureedge.core.ModelSpec
import org.fractureedge.core.Pixels
import org.fractureedge.core.ReportModel
import org.fractureedge.core.RunningModel
import org.fractureedge.core.SpecException

/** The model that is loaded, for the status line and the device report. */
data class LoadedModel(
    val choice: ModelChoice,
    val spec: ModelSpec,
    val sha256: String,
    val threads: Int,
    /** Where the spec came from: embedded in the .tflite, or the JSON sidecar. */
    val specOrigin: String,
    /** Set when the first choice failed and this is the CPU fallback: why. */
    val fallbackFrom: String? = null
) {
    val accelerator: Accelerator get() = choice.accelerator

    fun running(): RunningModel =
        RunningModel(ReportModel(choice.modelFile, sha256, spec.bundleSha256, spec.precision), accelerator, threads, fallbackFrom)
}

/** Loading the model failed; [message] is fit for the screen. */
class ModelUnavailableException(message: String, cause: Throwable? = null) : Exception(message, cause)

/**
 * Owns the classifier and the one thread all model work runs on (loading, preprocessing,
 * inference, closing). Every public call hops onto that thread. A GPU path that fails to load
 * or to run (any Throwable but running out of memory: a missing GPU library is an
 * UnsatisfiedLinkError or NoClassDefFoundError) is replaced by the CPU model once, and named so.
 */
class ModelHost(private val assets: AssetManager, private val probe: AcceleratorProbe = LiteRtGpuProbe()) : Closeable {
    constructor(context: Context) : this(context.applicationContext.assets)

    private val executor = Executors.newSingleThreadExecutor { r -> Thread(r, "fracture-model") }
    private val dispatcher = executor.asCoroutineDispatcher()
    private var classifier: Classifier? = null

    @Volatile private var loaded: LoadedModel? = null

    /** The model that classifies now (null before the first load). */
    fun current(): LoadedModel? = loaded

    /** Loads (or reloads, when [reload]) the model for [preference] with [cpuThreads] CPU threads. */
    suspend fun load(preference: AcceleratorPreference, cpuThreads: Int, reload: Boolean = false): LoadedModel = withContext(dispatcher) {
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
            open(first, cpuThreads, null)
        } catch (e: Throwable) {
            if (!Failures.recoverable(e)) throw e
            if (first.accelerator != Accelerator.GPU) throw unavailable(first, e)
            Log.w(TAG, "GPU path failed to load, falling back to CPU", e)
            fallBack(available, cpuThreads, "GPU failed to load (${Failures.describe(e)})", e)
        }
    }

    private fun fallBack(available: Set<String>, cpuThreads: Int, why: String, cause: Throwable): LoadedModel {
        release()
        val cpu = AcceleratorChooser.fallbackToCpu(available) ?: throw unavailable(null, cause)
        return try {
            open(cpu, cpuThreads, why)
        } catch (e2: Throwable) {
            if (!Failures.recoverable(e2)) throw e2
            throw unavailable(cpu, e2)
        }
    }

    private fun unavailable(choice: ModelChoice?, e: Throwable): ModelUnavailableException {
        val what =
            when (e) {
                is SpecException -> "its spec does not fit: ${e.message}"
                is IOException -> "it cannot be read: ${e.message}"
                else -> "${e.javaClass.simpleName}: ${Failures.describe(e)}"
            }
        return ModelUnavailableException("Cannot load ${choice?.modelFile ?: "a CPU model"}: $what", e)
    }

    private fun open(choice: ModelChoice, cpuThreads: Int, fallbackFrom: String?): LoadedModel {
        val bytes = assets.open(choice.modelFile).use { it.readBytes() }
        val sidecar =
            try {
                assets.open(choice.specFile).use { it.readBytes().toString(Charsets.UTF_8) }
            } catch (e: FileNotFoundException) {
                null // the spec embedded in the .tflite is enough
            }
        val source = ModelSource.resolve(choice.modelFile, bytes, sidecar)
        val engine = LiteRtEngine(mapAsset(choice.modelFile), source.spec, choice.accelerator, cpuThreads)
        classifier = Classifier(source.spec, engine)
        return LoadedModel(choice, source.spec, source.sha256, engine.threads, source.specOrigin, fallbackFrom).also { loaded = it }
    }

    /** Memory-maps an uncompressed asset (build.gradle.kts keeps .tflite uncompressed). */
    private fun mapAsset(name: String): ByteBuffer = assets.openFd(name).use { fd ->
        FileInputStream(fd.fileDescriptor).use { stream ->
            stream.channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }

    /** Classifies [pixels] on the model thread; a GPU failure at run time switches to the CPU model once. */
    suspend fun classify(pixels: Pixels, preference: AcceleratorPreference, cpuThreads: Int): Classification {
        load(preference, cpuThreads)
        return withContext(dispatcher) {
            val c = classifier ?: throw ModelUnavailableException("The model is not loaded.")
            try {
                c.classify(pixels)
            } catch (e: Throwable) {
                if (!Failures.recoverable(e) || c.accelerator != Accelerator.GPU) throw e
                Log.w(TAG, "GPU inference failed, falling back to CPU", e)
                fallBack(assets.list("")?.toSet().orEmpty(), cpuThreads, "GPU failed to run (${Failures.describe(e)})", e)
                classifier!!.classify(pixels)
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
