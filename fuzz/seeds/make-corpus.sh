#!/usr/bin/env bash
# Builds the seed corpora in fuzz/corpus/<target>/ (gitignored) from the hand-written seeds
# beside this script, the repository's examples, the shared Qualys fixtures (read here, never
# copied into the repository), reports from the simulator's generator (when its qualys-sim
# binary exists) and PKCS#12 files made with openssl (when it is installed).
# Usage: fuzz/seeds/make-corpus.sh   (from anywhere; safe to re-run, it only adds files)
set -euo pipefail

seeds="$(cd "$(dirname "$0")" && pwd)"
fuzz="$(dirname "$seeds")"
repo="$(dirname "$fuzz")"
corpus="$fuzz/corpus"
fixtures="${QUALYS_FIXTURES:-$repo/../shared/fixtures/qualys}"

for t in report_pipeline report_parser config ip_ranges cli frame_decoder csv_line pkcs12 text; do
    mkdir -p "$corpus/$t"
done

# Copies a file into one or more target corpora.
add() {
    local file="$1"
    shift
    for t in "$@"; do
        cp "$file" "$corpus/$t/$(basename "$file")"
    done
}

# --- reports -------------------------------------------------------------------------------
for f in "$seeds"/report/* "$repo"/examples/*.xml; do
    add "$f" report_pipeline report_parser
done
if compgen -G "$fixtures/*.xml" >/dev/null; then
    for f in "$fixtures"/*.xml; do
        add "$f" report_pipeline report_parser
    done
else
    echo "make-corpus: no fixtures in $fixtures (set QUALYS_FIXTURES)" >&2
fi
if [ -f "$repo/sim/src/bin/qualys-sim.rs" ]; then
    gen="$(mktemp -d)"
    for seed in 1 2 3; do
        extra=()
        [ "$seed" = 2 ] && extra=(--glossary-first --ipv6-every 2)
        (cd "$repo" && cargo run -q -p qualys-connector-sim --bin qualys-sim -- generate \
            --hosts 5 --seed "$seed" --findings-per-host 4 --qids 12 "${extra[@]}" \
            --out "$gen/generated-$seed.xml" >/dev/null) ||
            echo "make-corpus: qualys-sim generate failed for seed $seed; skipped" >&2
        [ -f "$gen/generated-$seed.xml" ] && add "$gen/generated-$seed.xml" report_pipeline report_parser
    done
    rm -rf "$gen"
else
    echo "make-corpus: no qualys-sim binary; generated reports skipped" >&2
fi

# --- config, ip_ranges, csv_line, text: hand-written plus the example configuration ---------
for f in "$seeds"/config/* "$repo"/examples/*.yaml; do add "$f" config; done
for f in "$seeds"/ip_ranges/*; do add "$f" ip_ranges; done
for f in "$seeds"/csv_line/*; do add "$f" csv_line; done
for f in "$seeds"/text/*; do add "$f" text; done
# The text target reads two parameter bytes first, then the text: the example report's body.
{ printf '\x40\x03'; cat "$repo/examples/report.xml"; } >"$corpus/text/example-report"

# --- cli: NUL-separated argv ----------------------------------------------------------------
printf -- '-server\0fmc.example\0-port\0008307\0-pkcs12\0client.pkcs12\0-password\0-x1\0QualysGuard' >"$corpus/cli/full"
printf -- '-report=r.xml\0-csvfile\0Output.csv\0--level=3\0-multiinfo\0424242,535353\0--summary-json=s.json\0csv' >"$corpus/cli/file"
printf -- '-se=fmc\0-SE\0x\0-i\0-sy\0-st\0-lo\0log\0--\0-positional' >"$corpus/cli/abbrev"
printf -- '-p\0-ipv6=1\0-level\0-1\0-unknown=secret\0\xff\xfe' >"$corpus/cli/bad"
printf -- '--help\0--version' >"$corpus/cli/help"

# --- frame_decoder: u32 type, u32 length, value (big-endian) --------------------------------
printf '\0\0\0\1\0\0\0\4\0\0\x80\0\0\0\0\3\0\0\0\x1bDone processing 3 commands.' >"$corpus/frame_decoder/maxsize-data"
printf '\0\0\0\4\0\0\0\x0dError: failed\0\0\0\3\0\0\0\x33Warning: line 2 ignored\nDone processing 12 commands.\n' >"$corpus/frame_decoder/error-warning"
printf '\0\0\0\2\0\0\0\4\0\0\0\1\0\0\0\x09\0\0\0\0' >"$corpus/frame_decoder/version-unknown"
printf '\0\0\0\3\0\xff\xff\xff' >"$corpus/frame_decoder/too-long"

# --- pkcs12: made by openssl, without and with the targets' password -------------------------
if command -v openssl >/dev/null; then
    p12="$(mktemp -d)"
    pw="fuzz-Pw9q" # PKCS12_PASSWORD in fuzz/src/lib.rs
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj /CN=192.0.2.5 -keyout "$p12/ec.key" -out "$p12/ec.crt" 2>/dev/null
    openssl req -x509 -newkey rsa:1024 -nodes -days 30 \
        -subj /CN=client -keyout "$p12/rsa.key" -out "$p12/rsa.crt" 2>/dev/null
    # Few iterations keep each execution fast; one file keeps OpenSSL's defaults.
    openssl pkcs12 -export -noiter -nomaciter -passout pass: -inkey "$p12/ec.key" \
        -in "$p12/ec.crt" -certfile "$p12/rsa.crt" -out "$corpus/pkcs12/ec-aes-nopass.p12"
    openssl pkcs12 -export -noiter -nomaciter -passout "pass:$pw" -inkey "$p12/ec.key" \
        -in "$p12/ec.crt" -out "$corpus/pkcs12/ec-aes-pass.p12"
    openssl pkcs12 -export -legacy -noiter -nomaciter -passout "pass:$pw" -inkey "$p12/rsa.key" \
        -in "$p12/rsa.crt" -out "$corpus/pkcs12/rsa-legacy-pass.p12" 2>/dev/null ||
        echo "make-corpus: openssl has no legacy provider; legacy PKCS#12 seed skipped" >&2
    openssl pkcs12 -export -passout pass: -inkey "$p12/rsa.key" -in "$p12/rsa.crt" \
        -out "$corpus/pkcs12/rsa-default-nopass.p12"
    openssl pkcs12 -export -nokeys -noiter -nomaciter -passout pass: -in "$p12/rsa.crt" \
        -out "$corpus/pkcs12/certs-only.p12"
    cp "$p12/ec.crt" "$corpus/pkcs12/pem-cert"
    openssl x509 -in "$p12/ec.crt" -outform der -out "$corpus/pkcs12/der-cert"
    rm -rf "$p12"
else
    echo "make-corpus: openssl not found; PKCS#12 seeds skipped" >&2
fi
printf '' >"$corpus/pkcs12/empty"

for t in "$corpus"/*; do
    echo "$(basename "$t"): $(find "$t" -type f | wc -l) seeds"
done
