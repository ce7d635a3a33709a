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
    // EDGE_VECTORS_DIR / EDGE_SERVER_URL / EDGE_ROUNDTRIP_DATA ... are read from the environment
    // (see README). Android Studio and a plain `./gradlew :core:test` have no Python side: the
    // tests that need it are skipped with their reason unless those variables are set. ci/check.sh
    // does not go through Gradle and keeps demanding them.
    for (flag in listOf("EDGE_SKIP_VECTORS", "EDGE_SKIP_SERVER", "EDGE_SKIP_ROUNDTRIP")) {
        if (System.getenv(flag) == null) environment(flag, "1")
    }
    testLogging {
        events("failed", "skipped")
        exceptionFormat = org.gradle.api.tasks.testing.logging.TestExceptionFormat.FULL
    }
}
