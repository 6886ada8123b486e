/*
 * Native AESM load generator: the same protocol as bench/_loadgen.py (one
 * request per connection: connect, write a pre-built frame, read the whole
 * reply, close), at a fraction of the CPU per request, so that on a 2-core
 * machine the clients leave the daemon its core.
 *
 * usage: loadgen SOCKET FRAME_FILE START STOP
 * START/STOP are Unix times (seconds, fractional). Prints one JSON document:
 * {"latencies": [...], "errors": N, "client_cpu_seconds": S}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/resource.h>

static double wall(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int read_all(int fd, unsigned char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* One request; 0 when a whole reply arrived. */
static int exchange(const struct sockaddr_un *addr, const unsigned char *frame, size_t len,
                    unsigned char *reply, size_t cap) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int rc = -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0 &&
        write(fd, frame, len) == (ssize_t)len) {
        unsigned char head[4];
        if (read_all(fd, head, 4) == 0) {
            uint32_t body = head[0] | head[1] << 8 | head[2] << 16 | (uint32_t)head[3] << 24;
            if (body > 0 && body <= cap && read_all(fd, reply, body) == 0) rc = 0;
        }
    }
    close(fd);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s SOCKET FRAME START STOP\n", argv[0]);
        return 2;
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
    FILE *f = fopen(argv[2], "rb");
    if (!f) return 2;
    static unsigned char frame[1 << 16];
    size_t len = fread(frame, 1, sizeof frame, f);
    fclose(f);
    double start = atof(argv[3]), stop = atof(argv[4]);

    size_t cap = 1 << 20, count = 0, room = 1 << 16;
    unsigned char *reply = malloc(cap);
    double *lat = malloc(room * sizeof *lat);
    long errors = 0;
    while (wall() < start) usleep(1000);
    while (wall() < stop) {
        double began = mono();
        if (exchange(&addr, frame, len, reply, cap) == 0) {
            if (count == room) lat = realloc(lat, (room *= 2) * sizeof *lat);
            lat[count++] = mono() - began;
        } else {
            errors++;
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("{\"latencies\": [");
    for (size_t i = 0; i < count; i++) printf(i ? ",%.9f" : "%.9f", lat[i]);
    printf("], \"errors\": %ld, \"client_cpu_seconds\": %.6f}\n", errors, cpu);
    return 0;
}
