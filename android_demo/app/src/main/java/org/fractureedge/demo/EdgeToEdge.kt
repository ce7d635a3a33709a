package org.fractureedge.demo

import android.view.View
import androidx.activity.ComponentActivity
import androidx.activity.enableEdgeToEdge
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat

/**
 * targetSdk 35+ draws every window edge to edge on Android 15+: the content root is padded by
 * the system bars, the display cutout and the keyboard, on top of its own padding, so no
 * button sits under the navigation bar and no field under the keyboard. The same on older
 * versions through enableEdgeToEdge().
 */
object EdgeToEdge {
    fun apply(activity: ComponentActivity, root: View) {
        activity.enableEdgeToEdge()
        val left = root.paddingLeft
        val top = root.paddingTop
        val right = root.paddingRight
        val bottom = root.paddingBottom
        ViewCompat.setOnApplyWindowInsetsListener(root) { v, insets ->
            val types = WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.displayCutout() or WindowInsetsCompat.Type.ime()
            val bars = insets.getInsets(types)
            v.setPadding(left + bars.left, top + bars.top, right + bars.right, bottom + bars.bottom)
            WindowInsetsCompat.CONSUMED
        }
    }
}
