#!/bin/sh
# The sample enclave application of the sgx-quote-helper-sample image.
#
# A (simulated) application enclave gets one quote through the node's quote
# helper: with SGX_AESM_ADDR set and /var/run/aesmd mounted it never touches
# QE3/PCE or the provisioning secret itself. It writes the quote to
# $SAMPLE_QUOTE_OUT (default /tmp/quote.bin) and prints it decoded and as base64,
# so a Job's log carries it to `sgx-quote-helper verify`.
#
# Environment: SGX_AESM_ADDR (required: "1" for the default socket),
# SGX_QUOTE_HELPER_PLATFORM (the platform directory; the simulated device plugin
# sets it), SAMPLE_REPORT_DATA (hex, default the text "sgx-quote-helper sample").
# Extra arguments go to `sgx-quote-helper quote`.
set -eu
if [ -z "${SGX_AESM_ADDR+set}" ]; then
    echo "sgx-quote-helper-sample: SGX_AESM_ADDR is not set: set it to \"1\" and mount" \
        "/var/run/aesmd to quote through the node's quote helper" >&2
    exit 2
fi
out="${SAMPLE_QUOTE_OUT:-/tmp/quote.bin}"
report_data="${SAMPLE_REPORT_DATA:-$(printf 'sgx-quote-helper sample' | od -An -tx1 | tr -d ' \n')}"
sgx-quote-helper quote --report-data "$report_data" -o "$out" "$@"
sgx-quote-helper inspect "$out"
echo "quote (base64):"
base64 -w0 "$out"
echo
