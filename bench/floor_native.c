/*
 * A native model of one quote per connection, for bench/floor.py: what the
 * daemon's work would cost without the Python interpreter. NOT an AESM
 * server: it decodes nothing and checks nothing.
 *
 * Per connection, as the daemon does for GetQuoteEx: accept, read the
 * request, AES-CMAC over 384 bytes of it (the REPORT's MAC check), ECDSA
 * P-256 sign over 432 bytes (the quote body) with SHA-256, copy the
 * signature into a reply of the real reply's size, write it, close. The
 * cryptography goes through OpenSSL's EVP interfaces with a fresh context per
 * call, as Python's `cryptography` does.
 *
 * usage: floor_native SOCKET REPLY_FILE
 * REPLY_FILE holds a real framed GetQuoteEx reply (its bytes are the template).
 * Runs until killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#define MAX_REQUEST 65536
#define BACKLOG 32 /* the daemon's, aesmd's */

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) return NULL;
    fseek(file, 0, SEEK_END);
    long size = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *data = size > 0 ? malloc((size_t)size) : NULL;
    if (data == NULL || fread(data, 1, (size_t)size, file) != (size_t)size) {
        fclose(file);
        free(data);
        return NULL;
    }
    fclose(file);
    *len = (size_t)size;
    return data;
}

/* The REPORT's MAC check: AES-128-CMAC over 384 bytes, a new context each time. */
static int cmac(EVP_MAC *algorithm, const unsigned char key[16], const unsigned char *data,
                unsigned char out[16]) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(algorithm);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, "AES-128-CBC", 0),
        OSSL_PARAM_construct_end(),
    };
    size_t len = 0;
    int ok = ctx != NULL && EVP_MAC_init(ctx, key, 16, params) &&
             EVP_MAC_update(ctx, data, 384) && EVP_MAC_final(ctx, out, &len, 16);
    EVP_MAC_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* The quote's signature: ECDSA P-256 with SHA-256 over 432 bytes (DER out). */
static int sign(EVP_PKEY *key, const unsigned char *data, unsigned char *out, size_t *len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestSign(ctx, out, len, data, 432) == 1;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET REPLY_FILE\n", argv[0]);
        return 2;
    }
    size_t reply_len = 0;
    unsigned char *reply = read_file(argv[2], &reply_len);
    if (reply == NULL || reply_len < 4 + 432 + 72) {
        fprintf(stderr, "cannot read a reply template from %s\n", argv[2]);
        return 2;
    }
    EVP_PKEY *key = EVP_EC_gen("P-256");
    EVP_MAC *algorithm = EVP_MAC_fetch(NULL, "CMAC", NULL);
    if (key == NULL || algorithm == NULL) {
        fprintf(stderr, "OpenSSL cannot make a P-256 key or a CMAC\n");
        return 1;
    }
    unsigned char mac_key[16] = {0};
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, BACKLOG) != 0) {
        perror("listen");
        return 1;
    }
    static unsigned char request[MAX_REQUEST];
    unsigned char tag[16], signature[80];
    for (;;) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) continue;
        ssize_t got = read(fd, request, sizeof request);
        size_t sig_len = sizeof signature;
        if (got >= 4 + 384 && cmac(algorithm, mac_key, request + 4, tag) == 0 &&
            sign(key, reply + 4, signature, &sig_len) == 0) {
            /* The quote's signature field: the template's bytes after the body. */
            memcpy(reply + 4 + 432, signature, sig_len < 64 ? sig_len : 64);
            ssize_t sent = 0;
            while ((size_t)sent < reply_len) {
                ssize_t n = write(fd, reply + sent, reply_len - (size_t)sent);
                if (n <= 0) break;
                sent += n;
            }
        }
        close(fd);
    }
}
