import org.jetbrains.kotlin.gradle.dsl.JvmTarget

// Pure Kotlin: preprocessing, postprocessing, spec, server client, heatmap, device report.
// No android.* here, so all of it is unit-tested on the JVM (see ci/check.sh).
plugins {
    alias(libs.plugins.kotlin.jvm)
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
        allWarningsAsErrors.set(true)
    }
}

dependencies {
    // org.json is built into Android; on the JVM the same implementation comes from android-json.
    compileOnly(libs.android.json)
    testImplementation(libs.android.json)
    testImplementation(libs.junit)
}

tasks.test {
    // EDGE_VECTORS_DIR / EDGE_SERVER_URL ... are read from the environment (see README).
    testLogging {
        events("failed", "skipped")
        exceptionFormat = org.gradle.api.tasks.testing.logging.TestExceptionFormat.FULL
    }
}
