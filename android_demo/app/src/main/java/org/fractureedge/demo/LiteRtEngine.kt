package org.fractureedge.demo

import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.fractureedge.core.Accelerator
import org.fractureedge.core.AcceleratorProbe
import org.fractureedge.core.InferenceEngine
import org.fractureedge.core.ModelSpec
import org.fractureedge.core.SpecException
import org.fractureedge.core.TensorCheck
import org.fractureedge.core.TensorInfo
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate

/** LiteRT's own answer to "can the GPU delegate run here?". */
class LiteRtGpuProbe : AcceleratorProbe {
    override fun gpuSupported(): Boolean {
        val list = CompatibilityList()
        try {
            return list.isDelegateSupportedOnThisDevice
        } finally {
            list.close()
        }
    }
}

/**
 * The LiteRT Interpreter behind core's [InferenceEngine]. GPU: the GPU delegate with the
 * device's best options; CPU: XNNPACK with [cpuThreads] threads. Checks the model's tensors
 * against [spec] and refuses a mismatched pair. Use from one thread; [close] frees the
 * interpreter and the delegate.
 */
class LiteRtEngine(model: ByteBuffer, private val spec: ModelSpec, override val accelerator: Accelerator, cpuThreads: Int) :
    InferenceEngine {
    private var gpuDelegate: GpuDelegate? = null
    private val interpreter: Interpreter
    override val threads: Int = if (accelerator == Accelerator.GPU) 1 else cpuThreads
    private val input: ByteBuffer
    private val output: ByteBuffer

    init {
        val options = Interpreter.Options()
        if (accelerator == Accelerator.GPU) {
            val list = CompatibilityList()
            val delegate =
                try {
                    GpuDelegate(list.bestOptionsForThisDevice)
                } finally {
                    list.close()
                }
            gpuDelegate = delegate
            options.addDelegate(delegate)
        } else {
            options.setNumThreads(cpuThreads)
            options.setUseXNNPACK(true)
        }
        interpreter =
            try {
                Interpreter(model, options)
            } catch (e: Throwable) {
                gpuDelegate?.close()
                throw e
            }
        try {
            TensorCheck.requireMatch(spec, info(interpreter.getInputTensor(0)), info(interpreter.getOutputTensor(0)))
            if (interpreter.inputTensorCount != 1 || interpreter.outputTensorCount != 1) {
                throw SpecException(
                    "the model has ${interpreter.inputTensorCount} inputs and " +
                        "${interpreter.outputTensorCount} outputs, expected 1 and 1"
                )
            }
        } catch (e: Throwable) {
            close()
            throw e
        }
        input = ByteBuffer.allocateDirect(spec.input.byteCount).order(ByteOrder.nativeOrder())
        output = ByteBuffer.allocateDirect(spec.output.byteCount).order(ByteOrder.nativeOrder())
    }

    private fun info(t: Tensor): TensorInfo {
        val q = t.quantizationParams()
        return TensorInfo(t.shape().toList(), t.dataType().name, q.scale.toDouble(), q.zeroPoint)
    }

    override fun run(input: ByteArray): ByteArray {
        this.input.clear()
        this.input.put(input)
        this.input.rewind()
        output.clear()
        interpreter.run(this.input, output)
        output.rewind()
        return ByteArray(output.remaining()).also { output.get(it) }
    }

    override fun close() {
        interpreter.close()
        gpuDelegate?.close()
        gpuDelegate = null
    }
}
