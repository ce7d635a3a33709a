package org.fractureedge.demo

import android.content.ActivityNotFoundException
import android.content.Intent
import android.net.Uri
import android.os.Bundle
import android.view.Menu
import android.view.MenuItem
import android.view.View
import android.widget.Button
import android.widget.CheckBox
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.core.content.FileProvider
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import java.io.File
import kotlinx.coroutines.launch

/**
 * The one screen: camera or gallery in, local result (probabilities, decision, time,
 * accelerator), Explain (server heatmap overlay) and Validate folder.
 */
class MainActivity : ComponentActivity() {
    private val vm: MainViewModel by viewModels()

    private lateinit var modelStatus: TextView
    private lateinit var image: ImageView
    private lateinit var showOriginal: CheckBox
    private lateinit var busyRow: View
    private lateinit var busyText: TextView
    private lateinit var errorText: TextView
    private lateinit var messageText: TextView
    private lateinit var resultText: TextView
    private lateinit var typeText: TextView
    private lateinit var serverText: TextView

    private val pickImage =
        registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri: Uri? ->
            if (uri != null) vm.onImage(uri)
        }

    private val takePicture =
        registerForActivityResult(ActivityResultContracts.TakePicture()) { saved: Boolean ->
            if (saved) vm.onImage(captureUri())
        }

    /** Any file from storage, e.g. a DICOM (.dcm) that the photo picker does not offer. */
    private val openFile =
        registerForActivityResult(ActivityResultContracts.OpenDocument()) { uri: Uri? ->
            if (uri != null) vm.onImage(uri)
        }

    private val pickFolder =
        registerForActivityResult(ActivityResultContracts.OpenDocumentTree()) { tree: Uri? ->
            if (tree != null) vm.validate(tree)
        }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        EdgeToEdge.apply(this, findViewById(R.id.main_root))
        modelStatus = findViewById(R.id.model_status)
        image = findViewById(R.id.image)
        showOriginal = findViewById(R.id.show_original)
        busyRow = findViewById(R.id.busy_row)
        busyText = findViewById(R.id.busy_text)
        errorText = findViewById(R.id.error_text)
        messageText = findViewById(R.id.message_text)
        resultText = findViewById(R.id.result_text)
        typeText = findViewById(R.id.type_text)
        serverText = findViewById(R.id.server_text)

        findViewById<Button>(R.id.gallery_button).setOnClickListener {
            pickImage.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.camera_button).setOnClickListener { launchCamera() }
        findViewById<Button>(R.id.file_button).setOnClickListener {
            openFile.launch(arrayOf("application/dicom", "image/*", "application/octet-stream"))
        }
        findViewById<Button>(R.id.explain_button).setOnClickListener { vm.explain() }
        findViewById<Button>(R.id.validate_button).setOnClickListener { pickFolder.launch(null) }
        showOriginal.setOnCheckedChangeListener { _, _ -> render(vm.state.value) }

        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                vm.state.collect { render(it) }
            }
        }
    }

    override fun onStart() {
        super.onStart()
        // Back from Settings: reload the model if the accelerator or thread setting changed.
        vm.reloadIfPreferenceChanged()
    }

    override fun onCreateOptionsMenu(menu: Menu): Boolean {
        menuInflater.inflate(R.menu.main, menu)
        return true
    }

    override fun onOptionsItemSelected(item: MenuItem): Boolean {
        if (item.itemId == R.id.action_settings) {
            startActivity(Intent(this, SettingsActivity::class.java))
            return true
        }
        return super.onOptionsItemSelected(item)
    }

    /** The camera app writes the full-size photo to a file we share through FileProvider. */
    private fun captureUri(): Uri {
        val dir = File(cacheDir, "captures").apply { mkdirs() }
        return FileProvider.getUriForFile(this, "$packageName.files", File(dir, "capture.jpg"))
    }

    private fun launchCamera() {
        try {
            takePicture.launch(captureUri())
        } catch (e: ActivityNotFoundException) {
            errorText.text = getString(R.string.no_camera)
            errorText.visibility = View.VISIBLE
        }
    }

    private fun render(s: UiState) {
        modelStatus.text = s.modelStatus ?: getString(R.string.model_loading)
        val shown = if (s.overlay != null && !showOriginal.isChecked) s.overlay else s.image
        image.setImageBitmap(shown)
        showOriginal.visibility = if (s.overlay != null) View.VISIBLE else View.GONE
        busyRow.visibility = if (s.busy != null) View.VISIBLE else View.GONE
        busyText.text = s.busy ?: ""
        show(errorText, s.error)
        show(messageText, s.message)
        resultText.text =
            when {
                s.local != null -> Texts.local(s.local)
                s.image == null -> getString(R.string.no_image)
                else -> ""
            }
        // Under the finding, small and grey (layout): never shown without a local result.
        show(typeText, s.typeLine?.takeIf { s.local != null })
        show(serverText, s.server?.let { Texts.server(it) })
    }

    private fun show(view: TextView, text: String?) {
        view.text = text ?: ""
        view.visibility = if (text.isNullOrEmpty()) View.GONE else View.VISIBLE
    }
}
