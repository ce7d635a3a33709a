package org.fractureedge.core

/** The model that classifies, as the device report names it. */
data class RunningModel(val model: ReportModel, val accelerator: Accelerator, val threads: Int, val fallback: String?)

/** What validation mode needs from the app: decoding and classifying, with any GPU fallback inside. */
interface ValidationBackend {
    /** The model that will classify the next image (it changes after a GPU-to-CPU fallback). */
    fun current(): RunningModel

    /** Decodes one image of the plan; throw [UnsupportedImageException] or any exception to record a failure. */
    fun decode(item: LabelledImage): Pixels

    fun classify(pixels: Pixels): Classification
}

/**
 * Validation mode without Android: every image of the plan becomes an entry or a recorded
 * failure, and every entry comes from one model. When the model changes mid-run (the GPU
 * delegate failed and the CPU model took over), the run starts again once, so the report
 * never mixes GPU and CPU results under one model name.
 */
class ValidationRun(private val backend: ValidationBackend, private val clockMillis: () -> Long = System::currentTimeMillis) {
    fun run(plan: List<LabelledImage>, device: DeviceInfo, progress: (done: Int, total: Int) -> Unit = { _, _ -> }): DeviceReport {
        require(plan.isNotEmpty()) { "no images in label subfolders (e.g. fractured/*.jpg, not_fractured/*.jpg)" }
        val attempt =
            pass(plan, progress) ?: pass(plan, progress)
                ?: throw IllegalStateException("the model changed twice during validation: ${backend.current().model.file}")
        val m = attempt.model
        return DeviceReport(
            model = m.model,
            device = device,
            accelerator = m.accelerator,
            threads = m.threads,
            created = DeviceReport.timestamp(clockMillis()),
            images = attempt.images,
            failures = attempt.failures,
            fallback = m.fallback
        )
    }

    private class Pass(val model: RunningModel, val images: List<ReportImage>, val failures: List<ReportFailure>)

    /** One pass over the plan, or null when the model changed during it. */
    private fun pass(plan: List<LabelledImage>, progress: (Int, Int) -> Unit): Pass? {
        val images = mutableListOf<ReportImage>()
        val failures = mutableListOf<ReportFailure>()
        val model = backend.current()
        for ((i, item) in plan.withIndex()) {
            progress(i, plan.size)
            try {
                val r = backend.classify(backend.decode(item))
                images += ReportImage(item.path, item.label, r.prediction.probabilities, r.inferenceMs)
            } catch (e: Throwable) {
                if (!Failures.recoverable(e)) throw e
                failures += ReportFailure(item.path, item.label, Failures.describe(e))
            }
            if (backend.current() != model) return null // GPU-to-CPU fallback: start again with one model
        }
        progress(plan.size, plan.size)
        return Pass(model, images, failures)
    }
}
