/*
 * A stand-in for Intel's libsgx_dcap_ql.so.1 (and the QE3 logic library it
 * links, libsgx_qe3_logic.so) for tests on machines without SGX.
 *
 * It exports the entry points the quote helper's `dcap` backend calls, with
 * the C signatures of DCAP's headers (sgx_dcap_ql_wrapper.h,
 * sgx_ql_core_wrapper.h; written from those declarations, no code copied):
 *
 *   quote3_error_t sgx_qe_set_enclave_load_policy(sgx_ql_request_policy_t);
 *   quote3_error_t sgx_ql_set_path(sgx_ql_path_type_t, const char *);
 *   quote3_error_t sgx_qe_get_target_info(sgx_target_info_t *);
 *   quote3_error_t sgx_qe_get_quote_size(uint32_t *);
 *   quote3_error_t sgx_qe_get_quote(const sgx_report_t *, uint32_t, uint8_t *);
 *   quote3_error_t sgx_qe_cleanup_by_policy(void);
 *   quote3_error_t sgx_ql_init_quote(sgx_ql_att_key_id_t *, sgx_target_info_t *,
 *                                    bool, size_t *, uint8_t *);
 *   quote3_error_t sgx_ql_get_quote_size(sgx_ql_att_key_id_t *, uint32_t *);
 *   quote3_error_t sgx_ql_get_quote(const sgx_report_t *, sgx_ql_att_key_id_t *,
 *                                   sgx_ql_qe_report_info_t *, uint8_t *, uint32_t);
 *
 * (the sgx_ql_* ones are left out when built with -DSHIM_NO_QE3_LOGIC).
 *
 * Every call is recorded in a text log ("enter NAME args" and "exit NAME
 * 0xCODE" lines) that the tests read with shim_log(). Results are scripted
 * per function, in order, with shim_script(NAME, CODE) or the environment
 * variable SGX_DCAP_SHIM_SCRIPT="NAME=0xCODE,NAME=0xCODE" read at load time;
 * a scripted non-zero result is returned before any output is written, like
 * a real failure. shim_set_delay_ms() makes every call take that long, and
 * shim_max_active() reports the most calls that were ever inside the library
 * at once (the quoting enclave is single-threaded: it must stay 1).
 *
 * Like the real library's constructor, loading it with SGX_AESM_ADDR set
 * selects "out-of-process" mode, in which the policy, path and cleanup calls
 * return SGX_QL_UNSUPPORTED_MODE.
 *
 * Outputs are deterministic so that tests can check the marshalling: the QE
 * target info is 0x40+i in its first 64 bytes, the ECDSA id 0xC0+i, and a
 * quote is a v3 header (version 3, ECDSA-256, QE SVN 7, PCE SVN 13), the
 * application REPORT's 384-byte body, the signature length and 0xEE filler.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef uint32_t quote3_error_t;

#define SGX_QL_SUCCESS 0x0000u
#define SGX_QL_ERROR_INVALID_PARAMETER 0xE002u
#define SGX_QL_UNSUPPORTED_LOADING_POLICY 0xE00Cu
#define SGX_QL_UNSUPPORTED_MODE 0xE03Eu

#define TARGET_INFO_SIZE 512
#define REPORT_SIZE 432
#define REPORT_BODY_SIZE 384
#define KEY_ID_SIZE 158
#define QE_REPORT_INFO_SIZE 960
#define PUB_KEY_ID_SIZE 32
#define QUOTE_FIXED_SIZE 436
#define NO_SCRIPT 0xFFFFFFFFu

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_log[1 << 20];
static size_t g_log_len;
static int g_active;
static int g_max_active;
static unsigned g_delay_ms;
static uint32_t g_quote_size = 1500;
static bool g_out_of_proc;
/* Misbehaviour on request (0: none): the ECDSA id size sgx_ql_init_quote
   reports, and bytes added to the signature length a quote claims. */
static size_t g_pub_key_id_size_out;
static uint32_t g_sig_len_excess;

#define MAX_SCRIPT 128
static struct {
    char name[48];
    uint32_t code;
} g_script[MAX_SCRIPT];
static int g_script_len;

static void record(const char *fmt, ...)
{
    va_list args;
    pthread_mutex_lock(&g_lock);
    va_start(args, fmt);
    int n = vsnprintf(g_log + g_log_len, sizeof(g_log) - g_log_len, fmt, args);
    va_end(args);
    if (n > 0 && g_log_len + (size_t)n + 1 < sizeof(g_log)) {
        g_log_len += (size_t)n;
        g_log[g_log_len++] = '\n';
        g_log[g_log_len] = '\0';
    }
    pthread_mutex_unlock(&g_lock);
}

/* Lower-case hex of n bytes, or "null". The buffer must hold 2n+1 bytes. */
static const char *hex(char *out, const uint8_t *data, size_t n)
{
    if (data == NULL)
        return "null";
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", data[i]);
    out[2 * n] = '\0';
    return out;
}

static uint32_t scripted(const char *name)
{
    uint32_t code = NO_SCRIPT;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < g_script_len; i++) {
        if (strcmp(g_script[i].name, name) == 0) {
            code = g_script[i].code;
            memmove(&g_script[i], &g_script[i + 1], sizeof(g_script[0]) * (size_t)(g_script_len - i - 1));
            g_script_len--;
            break;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return code;
}

static void enter(void)
{
    pthread_mutex_lock(&g_lock);
    g_active++;
    if (g_active > g_max_active)
        g_max_active = g_active;
    unsigned delay = g_delay_ms;
    pthread_mutex_unlock(&g_lock);
    if (delay)
        usleep(delay * 1000u);
}

static quote3_error_t leave(const char *name, quote3_error_t result)
{
    pthread_mutex_lock(&g_lock);
    g_active--;
    pthread_mutex_unlock(&g_lock);
    record("exit %s 0x%04x", name, result);
    return result;
}

/* ---- control interface for the tests ---- */

const char *shim_log(void) { return g_log; }

void shim_reset(void)
{
    pthread_mutex_lock(&g_lock);
    g_log_len = 0;
    g_log[0] = '\0';
    g_script_len = 0;
    g_max_active = 0;
    g_delay_ms = 0;
    g_quote_size = 1500;
    g_pub_key_id_size_out = 0;
    g_sig_len_excess = 0;
    pthread_mutex_unlock(&g_lock);
}

int shim_script(const char *name, uint32_t code)
{
    int ok = 0;
    pthread_mutex_lock(&g_lock);
    if (g_script_len < MAX_SCRIPT && strlen(name) < sizeof(g_script[0].name)) {
        strcpy(g_script[g_script_len].name, name);
        g_script[g_script_len].code = code;
        g_script_len++;
        ok = 1;
    }
    pthread_mutex_unlock(&g_lock);
    return ok;
}

void shim_set_delay_ms(unsigned ms)
{
    pthread_mutex_lock(&g_lock);
    g_delay_ms = ms;
    pthread_mutex_unlock(&g_lock);
}

void shim_set_quote_size(uint32_t size) { g_quote_size = size; }

void shim_misbehave(size_t pub_key_id_size, uint32_t sig_len_excess)
{
    g_pub_key_id_size_out = pub_key_id_size;
    g_sig_len_excess = sig_len_excess;
}

int shim_max_active(void) { return g_max_active; }

static void __attribute__((constructor)) shim_load(void)
{
    g_out_of_proc = getenv("SGX_AESM_ADDR") != NULL;
    record("load out_of_proc=%d", g_out_of_proc ? 1 : 0);
    const char *script = getenv("SGX_DCAP_SHIM_SCRIPT");
    if (script != NULL) {
        char copy[4096];
        snprintf(copy, sizeof(copy), "%s", script);
        char *saveptr = NULL;
        for (char *item = strtok_r(copy, ",", &saveptr); item; item = strtok_r(NULL, ",", &saveptr)) {
            char *eq = strchr(item, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            shim_script(item, (uint32_t)strtoul(eq + 1, NULL, 0));
        }
    }
    const char *delay = getenv("SGX_DCAP_SHIM_DELAY_MS");
    if (delay != NULL)
        g_delay_ms = (unsigned)strtoul(delay, NULL, 0);
}

/* ---- deterministic outputs ---- */

static void fill_target_info(uint8_t *target_info)
{
    memset(target_info, 0, TARGET_INFO_SIZE);
    for (int i = 0; i < 64; i++)
        target_info[i] = (uint8_t)(0x40 + i);
}

static void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

static void fill_quote(const uint8_t *report, uint8_t *quote, uint32_t buffer_size)
{
    memset(quote, 0, buffer_size);
    put_u16(quote, 3);           /* version */
    put_u16(quote + 2, 2);       /* att_key_type: ECDSA-256 */
    put_u16(quote + 8, 7);       /* qe_svn */
    put_u16(quote + 10, 13);     /* pce_svn */
    memcpy(quote + 48, report, REPORT_BODY_SIZE);
    put_u32(quote + 432, g_quote_size - QUOTE_FIXED_SIZE + g_sig_len_excess);
    memset(quote + QUOTE_FIXED_SIZE, 0xEE, g_quote_size - QUOTE_FIXED_SIZE);
}

/* ---- libsgx_dcap_ql.so.1 ---- */

quote3_error_t sgx_qe_set_enclave_load_policy(uint32_t policy)
{
    static const char name[] = "sgx_qe_set_enclave_load_policy";
    record("enter %s policy=%u", name, policy);
    enter();
    uint32_t code = scripted(name);
    if (g_out_of_proc)
        return leave(name, SGX_QL_UNSUPPORTED_MODE);
    if (code != NO_SCRIPT)
        return leave(name, code);
    if (policy > 1)
        return leave(name, SGX_QL_UNSUPPORTED_LOADING_POLICY);
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_ql_set_path(int path_type, const char *path)
{
    static const char name[] = "sgx_ql_set_path";
    record("enter %s type=%d path=%s", name, path_type, path ? path : "null");
    enter();
    uint32_t code = scripted(name);
    if (g_out_of_proc)
        return leave(name, SGX_QL_UNSUPPORTED_MODE);
    if (path == NULL || path_type < 0 || path_type > 3)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    if (code != NO_SCRIPT)
        return leave(name, code);
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_qe_get_target_info(uint8_t *target_info)
{
    static const char name[] = "sgx_qe_get_target_info";
    record("enter %s out=%s", name, target_info ? "buffer" : "null");
    enter();
    if (target_info == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    memset(target_info, 0, TARGET_INFO_SIZE);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    fill_target_info(target_info);
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_qe_get_quote_size(uint32_t *quote_size)
{
    static const char name[] = "sgx_qe_get_quote_size";
    record("enter %s out=%s", name, quote_size ? "buffer" : "null");
    enter();
    if (quote_size == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    *quote_size = g_quote_size;
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_qe_get_quote(const uint8_t *report, uint32_t quote_size, uint8_t *quote)
{
    static const char name[] = "sgx_qe_get_quote";
    char report_hex[2 * REPORT_SIZE + 1];
    record("enter %s report=%s size=%u", name, hex(report_hex, report, REPORT_SIZE), quote_size);
    enter();
    if (report == NULL || quote == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    if (quote_size < g_quote_size)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    fill_quote(report, quote, quote_size);
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_qe_cleanup_by_policy(void)
{
    static const char name[] = "sgx_qe_cleanup_by_policy";
    record("enter %s", name);
    enter();
    uint32_t code = scripted(name);
    if (g_out_of_proc)
        return leave(name, SGX_QL_UNSUPPORTED_MODE);
    if (code != NO_SCRIPT)
        return leave(name, code);
    return leave(name, SGX_QL_SUCCESS);
}

/* ---- libsgx_qe3_logic.so (linked by libsgx_dcap_ql.so.1) ---- */

#ifndef SHIM_NO_QE3_LOGIC
quote3_error_t sgx_ql_init_quote(const uint8_t *att_key_id, uint8_t *target_info, bool refresh_att_key,
                                 size_t *pub_key_id_size, uint8_t *pub_key_id)
{
    static const char name[] = "sgx_ql_init_quote";
    char key_hex[2 * KEY_ID_SIZE + 1];
    record("enter %s key_id=%s target_info=%s refresh=%d size=%zu pub_key_id=%s", name,
           hex(key_hex, att_key_id, KEY_ID_SIZE), target_info ? "buffer" : "null", refresh_att_key ? 1 : 0,
           pub_key_id_size ? *pub_key_id_size : (size_t)0, pub_key_id ? "buffer" : "null");
    enter();
    if (pub_key_id_size == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    if (pub_key_id == NULL) {
        *pub_key_id_size = PUB_KEY_ID_SIZE;
        return leave(name, SGX_QL_SUCCESS);
    }
    if (target_info == NULL || *pub_key_id_size != PUB_KEY_ID_SIZE)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    fill_target_info(target_info);
    for (int i = 0; i < PUB_KEY_ID_SIZE; i++)
        pub_key_id[i] = (uint8_t)(0xC0 + i);
    if (g_pub_key_id_size_out)
        *pub_key_id_size = g_pub_key_id_size_out;
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_ql_get_quote_size(const uint8_t *att_key_id, uint32_t *quote_size)
{
    static const char name[] = "sgx_ql_get_quote_size";
    char key_hex[2 * KEY_ID_SIZE + 1];
    record("enter %s key_id=%s", name, hex(key_hex, att_key_id, KEY_ID_SIZE));
    enter();
    if (quote_size == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    *quote_size = g_quote_size;
    return leave(name, SGX_QL_SUCCESS);
}

quote3_error_t sgx_ql_get_quote(const uint8_t *report, const uint8_t *att_key_id, uint8_t *qe_report_info,
                                uint8_t *quote, uint32_t quote_size)
{
    static const char name[] = "sgx_ql_get_quote";
    char report_hex[2 * REPORT_SIZE + 1], key_hex[2 * KEY_ID_SIZE + 1], info_hex[2 * QE_REPORT_INFO_SIZE + 1];
    record("enter %s report=%s key_id=%s qe_report_info=%s size=%u", name, hex(report_hex, report, REPORT_SIZE),
           hex(key_hex, att_key_id, KEY_ID_SIZE), hex(info_hex, qe_report_info, QE_REPORT_INFO_SIZE), quote_size);
    enter();
    if (report == NULL || quote == NULL)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    uint32_t code = scripted(name);
    if (code != NO_SCRIPT)
        return leave(name, code);
    if (quote_size < g_quote_size)
        return leave(name, SGX_QL_ERROR_INVALID_PARAMETER);
    fill_quote(report, quote, quote_size);
    if (qe_report_info != NULL) {
        /* The QE report, targeted at the application enclave: here its
         * report_data carries the nonce and the target's MRENCLAVE, so the
         * tests can see both went in and the report came out in place. */
        uint8_t *qe_report = qe_report_info + 16 + TARGET_INFO_SIZE;
        memset(qe_report, 0x5A, REPORT_SIZE);
        memcpy(qe_report + 320, qe_report_info, 16);
        memcpy(qe_report + 336, qe_report_info + 16, 32);
    }
    return leave(name, SGX_QL_SUCCESS);
}
#endif
