package org.fractureedge.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class AcceleratorTest {
    private val all = setOf(ModelFiles.INT8_MODEL, ModelFiles.INT8_SPEC, ModelFiles.FP16_MODEL, ModelFiles.FP16_SPEC)
    private val gpu = AcceleratorProbe { true }
    private val noGpu = AcceleratorProbe { false }

    @Test
    fun gpuGetsFp16() {
        val c = AcceleratorChooser.choose(gpu, all)
        assertEquals(Accelerator.GPU, c.accelerator)
        assertEquals("fracture_fp16.tflite", c.modelFile)
        assertEquals("fracture_fp16.json", c.specFile)
    }

    @Test
    fun cpuGetsInt8() {
        val c = AcceleratorChooser.choose(noGpu, all)
        assertEquals(Accelerator.CPU, c.accelerator)
        assertEquals("fracture_int8.tflite", c.modelFile)
        assertEquals("fracture_int8.json", c.specFile)
    }

    @Test
    fun settingsCanForceCpu() {
        val c = AcceleratorChooser.choose(gpu, all, AcceleratorPreference.CPU_ONLY)
        assertEquals(Accelerator.CPU, c.accelerator)
        assertTrue(c.reason.contains("Settings"))
    }

    @Test
    fun settingsCanForceGpuAndThreads() {
        val c = AcceleratorChooser.choose(noGpu, all, AcceleratorPreference.GPU_ONLY)
        assertEquals(Accelerator.GPU to ModelFiles.FP16_MODEL, c.accelerator to c.modelFile)
        val noFp16 = AcceleratorChooser.choose(gpu, setOf(ModelFiles.INT8_MODEL), AcceleratorPreference.GPU_ONLY)
        assertTrue(noFp16.accelerator == Accelerator.CPU && noFp16.reason.contains("fp16 model is missing"))
        assertEquals(4, CpuThreads.resolve(null, 8))
        assertEquals(2, CpuThreads.resolve(null, 2))
        assertEquals(6, CpuThreads.resolve(6, 8))
        assertEquals(8, CpuThreads.resolve(64, 8))
        assertEquals(1, CpuThreads.resolve(0, 8))
    }

    @Test
    fun linkageErrorsAreRecoverableButOutOfMemoryIsNot() {
        assertTrue(Failures.recoverable(UnsatisfiedLinkError("dlopen failed: libOpenCL.so")))
        assertTrue(Failures.recoverable(NoClassDefFoundError("org/tensorflow/lite/gpu/GpuDelegate")))
        assertTrue(Failures.recoverable(IllegalArgumentException("Internal error: Failed to apply delegate")))
        assertTrue(!Failures.recoverable(OutOfMemoryError()))
        assertTrue(!Failures.recoverable(java.util.concurrent.CancellationException("view model cleared")))
        assertEquals("NoClassDefFoundError", Failures.describe(NoClassDefFoundError()))
    }

    @Test
    fun probeThatThrowsMeansNoGpu() {
        val c = AcceleratorChooser.choose({ throw UnsatisfiedLinkError("no libtensorflowlite_gpu_jni") }, all)
        assertEquals(Accelerator.CPU, c.accelerator)
    }

    @Test
    fun missingFilesFallBack() {
        val onlyInt8 = setOf(ModelFiles.INT8_MODEL, ModelFiles.INT8_SPEC)
        assertEquals(Accelerator.CPU, AcceleratorChooser.choose(gpu, onlyInt8).accelerator)
        val onlyFp16 = setOf(ModelFiles.FP16_MODEL, ModelFiles.FP16_SPEC)
        val c = AcceleratorChooser.choose(noGpu, onlyFp16)
        assertEquals(Accelerator.CPU to ModelFiles.FP16_MODEL, c.accelerator to c.modelFile)
        // A model without its sidecar still counts: its spec is embedded (ModelSourceTest).
        val noSidecar = setOf(ModelFiles.FP16_MODEL, ModelFiles.INT8_MODEL, ModelFiles.INT8_SPEC)
        assertEquals(ModelFiles.FP16_MODEL, AcceleratorChooser.choose(gpu, noSidecar).modelFile)
    }

    @Test(expected = MissingModelException::class)
    fun noModelAtAllIsAClearError() {
        AcceleratorChooser.choose(gpu, setOf("README.txt", ModelFiles.INT8_SPEC))
    }

    @Test
    fun fallbackAfterGpuFailure() {
        assertEquals(ModelFiles.INT8_MODEL, AcceleratorChooser.fallbackToCpu(all)!!.modelFile)
        assertEquals(Accelerator.CPU, AcceleratorChooser.fallbackToCpu(setOf(ModelFiles.FP16_MODEL, ModelFiles.FP16_SPEC))!!.accelerator)
        assertNull(AcceleratorChooser.fallbackToCpu(emptySet()))
        assertEquals("fracture_int8.json", ModelFiles.specFor("fracture_int8.tflite"))
    }
}
