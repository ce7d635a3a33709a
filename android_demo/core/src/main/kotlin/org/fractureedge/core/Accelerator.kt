package org.fractureedge.core

enum class Accelerator(val wire: String) {
    GPU("gpu"),
    CPU("cpu")
}

/** What the user asked for in Settings: Automatic (GPU where LiteRT says it works), CPU or GPU. */
enum class AcceleratorPreference { AUTO, CPU_ONLY, GPU_ONLY }

/** CPU thread count for the interpreter: the user's choice, kept within 1..the cores there are. */
object CpuThreads {
    const val DEFAULT = 4

    fun resolve(requested: Int?, cores: Int): Int = (requested ?: minOf(DEFAULT, cores)).coerceIn(1, cores.coerceAtLeast(1))
}

/** Answers whether the GPU delegate can run on this device (on Android: LiteRT's CompatibilityList). */
fun interface AcceleratorProbe {
    fun gpuSupported(): Boolean
}

/** The model asset names that `edge convert` produces and the lead copies into app/src/main/assets. */
object ModelFiles {
    const val INT8_MODEL = "fracture_int8.tflite"
    const val INT8_SPEC = "fracture_int8.json"
    const val FP16_MODEL = "fracture_fp16.tflite"
    const val FP16_SPEC = "fracture_fp16.json"

    fun specFor(model: String): String = model.removeSuffix(".tflite") + ".json"
}

data class ModelChoice(val modelFile: String, val specFile: String, val accelerator: Accelerator, val reason: String)

class MissingModelException(message: String) : Exception(message)

/**
 * Picks model file and accelerator. The GPU delegate computes in float, so the fp16 model
 * goes to the GPU; the int8 model runs on the CPU with XNNPACK. [available] is the set of
 * asset names present; a .tflite counts on its own (its spec is embedded; the JSON sidecar is
 * the fallback and ModelSource refuses a model that has neither).
 */
object AcceleratorChooser {
    fun choose(
        probe: AcceleratorProbe,
        available: Set<String>,
        preference: AcceleratorPreference = AcceleratorPreference.AUTO
    ): ModelChoice {
        val hasInt8 = ModelFiles.INT8_MODEL in available
        val hasFp16 = ModelFiles.FP16_MODEL in available
        if (!hasInt8 && !hasFp16) {
            throw MissingModelException(
                "No model in the app: expected ${ModelFiles.INT8_MODEL} or ${ModelFiles.FP16_MODEL} " +
                    "in assets (from `edge convert`, with its .json beside it)."
            )
        }
        val gpu =
            preference == AcceleratorPreference.AUTO &&
                try {
                    probe.gpuSupported()
                } catch (e: Throwable) {
                    false
                }
        if (preference == AcceleratorPreference.GPU_ONLY && hasFp16) {
            return fp16(Accelerator.GPU, "GPU chosen in Settings: fp16 model on GPU")
        }
        return when {
            gpu && hasFp16 -> fp16(Accelerator.GPU, "GPU delegate supported: fp16 model on GPU")
            hasInt8 -> int8(cpuReason(preference, gpu, hasFp16))
            else -> fp16(Accelerator.CPU, "int8 model missing: fp16 model on CPU (XNNPACK)")
        }
    }

    /** After the GPU delegate failed to initialise or run: the CPU path, or null if there is none. */
    fun fallbackToCpu(available: Set<String>): ModelChoice? = when {
        ModelFiles.INT8_MODEL in available -> int8(
            "GPU delegate failed: int8 model on CPU (XNNPACK)"
        )

        ModelFiles.FP16_MODEL in available ->
            fp16(Accelerator.CPU, "GPU delegate failed: fp16 model on CPU (XNNPACK)")

        else -> null
    }

    private fun cpuReason(preference: AcceleratorPreference, gpu: Boolean, hasFp16: Boolean): String = when {
        preference == AcceleratorPreference.CPU_ONLY -> "CPU chosen in Settings: int8 model on CPU (XNNPACK)"
        preference == AcceleratorPreference.GPU_ONLY -> "GPU chosen in Settings but the fp16 model is missing: int8 model on CPU (XNNPACK)"
        gpu && !hasFp16 -> "fp16 model missing: int8 model on CPU (XNNPACK)"
        else -> "GPU delegate not supported on this device: int8 model on CPU (XNNPACK)"
    }

    private fun int8(reason: String) = ModelChoice(ModelFiles.INT8_MODEL, ModelFiles.INT8_SPEC, Accelerator.CPU, reason)

    private fun fp16(accelerator: Accelerator, reason: String) =
        ModelChoice(ModelFiles.FP16_MODEL, ModelFiles.FP16_SPEC, accelerator, reason)
}

/**
 * Which failures the app turns into a message or a CPU fallback: everything except the JVM
 * running out of resources and a cancellation (kotlinx's CancellationException is this class on
 * the JVM: a coroutine being cancelled must stay cancelled). A missing GPU library surfaces as
 * UnsatisfiedLinkError or NoClassDefFoundError (Errors, not Exceptions) and must fall back.
 */
object Failures {
    fun recoverable(t: Throwable): Boolean = t !is VirtualMachineError && t !is java.util.concurrent.CancellationException

    /** One line for the screen: the message, or the type when there is none. */
    fun describe(t: Throwable): String = t.message?.lineSequence()?.firstOrNull()?.takeIf { it.isNotBlank() } ?: t.javaClass.simpleName
}
