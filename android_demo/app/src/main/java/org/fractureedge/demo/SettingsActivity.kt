package org.fractureedge.demo

import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.CheckBox
import android.widget.EditText
import android.widget.RadioGroup
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.fractureedge.core.AcceleratorPreference
import org.fractureedge.core.Failures
import org.fractureedge.core.ServerClient
import org.fractureedge.core.ServerException

/**
 * Server address and token, accelerator (Automatic, CPU, GPU), CPU threads and the fracture-type line;
 * "Test connection" calls /healthz.
 */
class SettingsActivity : ComponentActivity() {
    private lateinit var settings: Settings
    private lateinit var url: EditText
    private lateinit var token: EditText
    private lateinit var accelerator: RadioGroup
    private lateinit var threads: EditText
    private lateinit var fractureType: CheckBox
    private lateinit var status: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_settings)
        EdgeToEdge.apply(this, findViewById(R.id.settings_root))
        actionBar?.setDisplayHomeAsUpEnabled(true)
        settings = Settings(this)
        url = findViewById(R.id.server_url)
        token = findViewById(R.id.server_token)
        accelerator = findViewById(R.id.accelerator_group)
        threads = findViewById(R.id.cpu_threads)
        fractureType = findViewById(R.id.show_fracture_type)
        status = findViewById(R.id.settings_status)

        if (savedInstanceState == null) {
            url.setText(settings.serverUrl)
            token.setText(settings.token)
            accelerator.check(
                when (settings.accelerator) {
                    AcceleratorPreference.CPU_ONLY -> R.id.accelerator_cpu
                    AcceleratorPreference.GPU_ONLY -> R.id.accelerator_gpu
                    AcceleratorPreference.AUTO -> R.id.accelerator_auto
                }
            )
            threads.setText(settings.cpuThreads?.toString() ?: "")
            fractureType.isChecked = settings.showFractureType
        }
        findViewById<Button>(R.id.save_button).setOnClickListener { save() }
        findViewById<Button>(R.id.test_button).setOnClickListener { testConnection() }
    }

    override fun onNavigateUp(): Boolean {
        finish()
        return true
    }

    private fun save() {
        try {
            val normalized = ServerClient.normalizeBaseUrl(url.text.toString())
            ServerClient.requireSecureTransport(normalized, settings.debugBuild)
            settings.serverUrl = normalized
        } catch (e: ServerException) {
            say(e.message, ok = false)
            return
        }
        settings.token = token.text.toString()
        settings.accelerator =
            when (accelerator.checkedRadioButtonId) {
                R.id.accelerator_cpu -> AcceleratorPreference.CPU_ONLY
                R.id.accelerator_gpu -> AcceleratorPreference.GPU_ONLY
                else -> AcceleratorPreference.AUTO
            }
        settings.cpuThreads = threads.text.toString().trim().toIntOrNull()?.takeIf { it > 0 }
        settings.showFractureType = fractureType.isChecked
        say(getString(R.string.settings_saved), ok = true)
    }

    private fun testConnection() {
        val address = url.text.toString()
        val bearer = token.text.toString()
        val debug = settings.debugBuild
        lifecycleScope.launch {
            val result =
                withContext(Dispatchers.IO) {
                    try {
                        ServerClient.requireSecureTransport(address, debug)
                        val client = ServerClient(address, bearer, connectTimeoutMs = 3_000, readTimeoutMs = 5_000)
                        if (client.healthy()) {
                            client.modelCard() // also checks the token
                            null
                        } else {
                            "No answer from ${client.baseUrl}/healthz"
                        }
                    } catch (e: ServerException) {
                        e.message
                    } catch (e: Exception) {
                        "Connection test failed: ${Failures.describe(e)}"
                    }
                }
            if (result == null) say(getString(R.string.connection_ok), ok = true) else say(result, ok = false)
        }
    }

    private fun say(text: String?, ok: Boolean) {
        status.text = text ?: ""
        status.setTextColor(getColor(if (ok) R.color.ok else R.color.error))
        status.visibility = View.VISIBLE
    }
}
