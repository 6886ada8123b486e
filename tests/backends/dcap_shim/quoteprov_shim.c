/*
 * A stand-in for a DCAP quote provider library (libdcap_quoteprov.so.1: Intel's
 * QPL or Azure's az-dcap-client) for tests without SGX: it exports the two
 * entry points DCAP's QE3 logic looks up in it, and has no PCCS behind them.
 */
#include <stdint.h>
#include <stddef.h>

typedef uint32_t quote3_error_t;

#define SGX_QL_NO_PLATFORM_CERT_DATA 0xE011u

quote3_error_t sgx_ql_get_quote_config(const void *pck_cert_id, void **quote_config)
{
    (void)pck_cert_id;
    if (quote_config != NULL)
        *quote_config = NULL;
    return SGX_QL_NO_PLATFORM_CERT_DATA;
}

quote3_error_t sgx_ql_free_quote_config(void *quote_config)
{
    (void)quote_config;
    return 0;
}
