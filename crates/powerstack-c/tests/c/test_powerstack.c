/* The C API of libpowerstack on a simulated node: reading, capping, bad input, threads.
 *
 * Usage: test_powerstack MODE [OUT_DIR]
 *   MODE full    intel-2s: every check below
 *        quick   intel-2s: open, read, one cap, its reset and a refusal (the static and
 *                valgrind runs)
 *        gpu     nvidia-4gpu: GPU caps (the mock NVML library is found through the environment)
 *   OUT_DIR      where the JSON documents are written for the Rust driver to parse
 * Exits 0 and prints "PASS N checks", or prints the failed check and exits 1. */

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "powerstack.h"

static int checks = 0;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        checks++;                                                                          \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fprintf(stderr, " (last error: %s)\n", ps_last_error());                      \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

/* A call that fails with `code` and says why. */
#define REFUSED(call, code)                                                                \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        CHECK(rc_ == (code), "%s returned %d, expected %d", #call, rc_, (int)(code));      \
        CHECK(strlen(ps_last_error()) > 0, "%s left no message", #call);                   \
    } while (0)

#define MAX_DOMAINS 64

static const char *out_dir = NULL;

/* Writes a JSON document for the Rust driver, then frees it. */
static void keep_json(const char *name, char *json) {
    CHECK(json != NULL && json[0] == '{', "%s is a JSON object", name);
    if (out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.json", out_dir, name);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL, "cannot write %s", path);
        fputs(json, f);
        fclose(f);
    }
    ps_string_free(json);
}

static size_t domains(ps_node *node, ps_domain *out) {
    size_t n = 0;
    CHECK(ps_domains(node, out, MAX_DOMAINS, &n) == PS_OK, "ps_domains");
    CHECK(n > 0 && n <= MAX_DOMAINS, "%zu domains", n);
    return n;
}

/* The lowest limit to aim at: the hardware's minimum, or a third of the maximum when unknown. */
static double low(const ps_domain *d) {
    return isnan(d->min_watts) ? floor(d->max_watts / 3) : d->min_watts;
}

static const ps_domain *find(const ps_domain *d, size_t n, ps_kind kind, uint32_t index) {
    for (size_t i = 0; i < n; i++)
        if (d[i].kind == kind && d[i].index == index && d[i].die < 0) return &d[i];
    return NULL;
}

/* Every domain's limit, NaN for none: to compare before and after a refused call. */
static void limits(ps_node *node, double *out, size_t *n) {
    ps_domain d[MAX_DOMAINS];
    *n = domains(node, d);
    for (size_t i = 0; i < *n; i++) out[i] = d[i].has_limit ? d[i].limit_watts : NAN;
}

static void same_limits(ps_node *node, const double *before, size_t n, const char *what) {
    double after[MAX_DOMAINS];
    size_t m;
    limits(node, after, &m);
    CHECK(m == n, "%s: the domain count changed", what);
    for (size_t i = 0; i < n; i++)
        CHECK((isnan(before[i]) && isnan(after[i])) || before[i] == after[i],
              "%s: limit %zu changed from %g to %g", what, i, before[i], after[i]);
}

static ps_node *open_sim(const char *profile) {
    ps_node *node = NULL;
    CHECK(ps_node_open(NULL, NULL, profile, &node) == PS_OK, "open %s", profile);
    CHECK(node != NULL, "a handle");
    CHECK(ps_node_is_simulated(node) == 1, "simulated");
    return node;
}

static void check_power(ps_node *node, uint32_t interval_ms) {
    ps_power_reading p[MAX_DOMAINS];
    size_t n = 0;
    double node_watts = 0;
    CHECK(ps_power(node, interval_ms, p, MAX_DOMAINS, &n, &node_watts) == PS_OK, "ps_power");
    CHECK(isfinite(node_watts) && node_watts > 0 && node_watts < 10000, "node %g W", node_watts);
    int packages = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i].kind != PS_KIND_PACKAGE) continue;
        packages++;
        CHECK(p[i].valid == 1, "package %u read", p[i].index);
        CHECK(p[i].watts > 1 && p[i].watts < 1000, "package %u: %g W", p[i].index, p[i].watts);
        CHECK(p[i].watts < node_watts, "package %u below the node", p[i].index);
    }
    CHECK(packages == 2, "2 packages, got %d", packages);
}

static void check_reading(ps_node *node, int full) {
    /* The first call on a fresh node: a real interval, never 0 W. */
    check_power(node, 20);
    if (full) check_power(node, 100);

    ps_energy_reading e1[MAX_DOMAINS], e2[MAX_DOMAINS];
    size_t n1 = 0, n2 = 0;
    CHECK(ps_energy(node, e1, MAX_DOMAINS, &n1) == PS_OK, "ps_energy");
    if (full) check_power(node, 50);
    else nanosleep(&(struct timespec){0, 50000000}, NULL);
    CHECK(ps_energy(node, e2, MAX_DOMAINS, &n2) == PS_OK, "ps_energy again");
    CHECK(n1 == n2 && n1 > 0, "%zu and %zu domains", n1, n2);
    int grew = 0;
    for (size_t i = 0; i < n1; i++) {
        if (!e1[i].valid) continue;
        CHECK(e2[i].valid, "domain %zu still read", i);
        CHECK(e2[i].joules >= e1[i].joules, "energy %zu: %g then %g J", i, e1[i].joules,
              e2[i].joules);
        grew += e2[i].joules > e1[i].joules;
        if (e1[i].kind == PS_KIND_PACKAGE) CHECK(e1[i].joules > 0, "package energy > 0");
    }
    CHECK(grew > 0, "some energy counter moved");

    char *json = NULL;
    CHECK(ps_power_json(node, 50, &json) == PS_OK, "ps_power_json");
    CHECK(strstr(json, "\"schema\":\"powerstack.power.v1\"") != NULL, "power schema: %s", json);
    keep_json("power", json);
    CHECK(ps_energy_json(node, &json) == PS_OK, "ps_energy_json");
    CHECK(strstr(json, "\"schema\":\"powerstack.energy.v1\"") != NULL, "energy schema");
    keep_json("energy", json);
    CHECK(ps_domains_json(node, &json) == PS_OK, "ps_domains_json");
    CHECK(strstr(json, "\"schema\":\"powerstack.domains.v1\"") != NULL, "domains schema");
    keep_json("domains", json);
}

/* Socket 0 capped in range and read back; reset puts every limit back. */
static void check_socket_cap(ps_node *node) {
    ps_domain d[MAX_DOMAINS];
    size_t n = domains(node, d);
    const ps_domain *s0 = find(d, n, PS_KIND_PACKAGE, 0), *s1 = find(d, n, PS_KIND_PACKAGE, 1);
    CHECK(s0 && s1 && s0->has_limit && !s0->locked, "socket 0 and 1 with a limit");
    CHECK(low(s0) > 0 && low(s0) < s0->max_watts, "range %g..%g", s0->min_watts, s0->max_watts);
    double original0 = s0->limit_watts, original1 = s1->limit_watts;
    double target = floor((low(s0) + s0->max_watts) / 2);
    CHECK(target != original0, "the target differs from the limit in force");

    char *json = NULL;
    CHECK(ps_cap_socket(node, 0, target, 0, NULL, 1, &json) == PS_OK, "dry run");
    CHECK(strstr(json, "\"dry_run\":true") != NULL, "a dry run says so: %s", json);
    ps_string_free(json);
    n = domains(node, d);
    CHECK(find(d, n, PS_KIND_PACKAGE, 0)->limit_watts == original0, "a dry run writes nothing");

    CHECK(ps_cap_socket(node, 0, target, 0, NULL, 0, &json) == PS_OK, "cap socket 0");
    keep_json("cap", json);
    n = domains(node, d);
    CHECK(fabs(find(d, n, PS_KIND_PACKAGE, 0)->limit_watts - target) < 0.5, "read back %g",
          find(d, n, PS_KIND_PACKAGE, 0)->limit_watts);
    CHECK(find(d, n, PS_KIND_PACKAGE, 1)->limit_watts == original1, "socket 1 untouched");

    CHECK(ps_cap_reset(node, NULL, 0, &json) == PS_OK, "reset");
    keep_json("reset", json);
    n = domains(node, d);
    CHECK(find(d, n, PS_KIND_PACKAGE, 0)->limit_watts == original0, "reset restores socket 0");
}

static void check_other_caps(ps_node *node) {
    double before[MAX_DOMAINS];
    size_t n;
    limits(node, before, &n);
    ps_domain d[MAX_DOMAINS];
    domains(node, d);
    const ps_domain *m0 = find(d, n, PS_KIND_MEMORY, 0);
    if (m0 && m0->has_limit && !m0->locked) {
        double target = floor((low(m0) + m0->max_watts) / 2);
        CHECK(ps_cap_memory(node, 0, target, NULL, 0, NULL) == PS_OK, "cap memory 0");
        domains(node, d);
        CHECK(fabs(find(d, n, PS_KIND_MEMORY, 0)->limit_watts - target) < 0.5, "memory read back");
    }
    /* Every socket at once, with a window of 1 s. */
    const ps_domain *s1 = find(d, n, PS_KIND_PACKAGE, 1);
    double all = floor(low(s1) + (s1->max_watts - low(s1)) / 3);
    CHECK(ps_cap_socket(node, -1, all, 1.0, NULL, 0, NULL) == PS_OK, "cap every socket");
    domains(node, d);
    for (uint32_t s = 0; s < 2; s++) {
        CHECK(fabs(find(d, n, PS_KIND_PACKAGE, s)->limit_watts - all) < 0.5, "socket %u", s);
        CHECK(fabs(find(d, n, PS_KIND_PACKAGE, s)->time_window_s - 1.0) < 0.01, "window %g",
              find(d, n, PS_KIND_PACKAGE, s)->time_window_s);
    }
    /* A node cap: measured, split, written, read back. */
    double node_watts = 0;
    ps_power_reading p[MAX_DOMAINS];
    size_t count;
    CHECK(ps_power(node, 50, p, MAX_DOMAINS, &count, &node_watts) == PS_OK, "power");
    char *json = NULL;
    CHECK(ps_cap_node(node, node_watts, "uniform", 50, NULL, 0, &json) == PS_OK, "cap node");
    CHECK(strstr(json, "\"node_cap_watts\"") != NULL, "node cap result: %s", json);
    keep_json("cap_node", json);
    CHECK(ps_caps_json(node, NULL, &json) == PS_OK, "ps_caps_json");
    CHECK(strstr(json, "\"schema\":\"powerstack.caps.v1\"") != NULL, "caps schema");
    keep_json("caps", json);
    CHECK(ps_cap_reset(node, NULL, 0, NULL) == PS_OK, "reset");
    same_limits(node, before, n, "after the reset");

    /* A state directory of the caller's: the journal is there, and a reset ends the node cap an
     * agent keeps standing in it. */
    if (out_dir) {
        char state[4096], standing[4200];
        snprintf(state, sizeof state, "%s/state", out_dir);
        snprintf(standing, sizeof standing, "%s/node-cap.json", state);
        CHECK(ps_cap_socket(node, 1, all, 0, state, 0, NULL) == PS_OK, "cap with a state dir");
        FILE *f = fopen(standing, "w");
        CHECK(f != NULL, "write %s", standing);
        fputs("{}", f);
        fclose(f);
        CHECK(ps_cap_reset(node, state, 1, NULL) == PS_OK, "dry-run reset");
        CHECK(access(standing, F_OK) == 0, "a dry run leaves the standing cap");
        CHECK(ps_cap_reset(node, state, 0, NULL) == PS_OK, "reset with a state dir");
        CHECK(access(standing, F_OK) != 0, "the reset ended the standing node cap");
        same_limits(node, before, n, "after the reset of the state dir");
    }
}

static void check_bad_input(ps_node *node) {
    double before[MAX_DOMAINS];
    size_t n;
    limits(node, before, &n);
    ps_domain d[MAX_DOMAINS];
    domains(node, d);
    double max0 = find(d, n, PS_KIND_PACKAGE, 0)->max_watts;
    double min0 = low(find(d, n, PS_KIND_PACKAGE, 0));
    char *json = NULL;

    REFUSED(ps_cap_socket(NULL, 0, min0 + 1, 0, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_socket(node, 9, min0 + 1, 0, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    CHECK(strstr(ps_last_error(), "9") != NULL, "names socket 9: %s", ps_last_error());
    REFUSED(ps_cap_socket(node, -5, min0 + 1, 0, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_socket(node, 0, max0 + 1000, 0, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, 0, NAN, 0, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, 0, INFINITY, 0, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, 0, -5, 0, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, 0, min0 + 1, NAN, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, 0, min0 + 1, -2, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_socket(node, -1, max0 + 1000, 0, NULL, 0, &json), PS_ERR_REFUSED);
    CHECK(json == NULL, "no result on a refusal");
    REFUSED(ps_cap_socket(node, 0, min0 + 1, 0, "/proc/powerstack-test", 0, NULL), PS_ERR_IO);
    REFUSED(ps_cap_memory(node, 7, 10, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    REFUSED(ps_cap_gpu(node, -1, 200, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    REFUSED(ps_cap_node(node, NAN, NULL, 0, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_node(node, -100, NULL, 0, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_node(node, 300, "nonsense", 0, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_node(node, 300, NULL, 5, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_cap_node(node, 1, NULL, 20, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    REFUSED(ps_cap_reset(NULL, NULL, 0, NULL), PS_ERR_INVALID);
    same_limits(node, before, n, "after refused caps");

    ps_power_reading p[4];
    size_t count = 0;
    REFUSED(ps_power(node, 0, p, 4, &count, NULL), PS_ERR_INVALID);
    REFUSED(ps_power(node, 3600001, p, 4, &count, NULL), PS_ERR_INVALID);
    REFUSED(ps_power(node, 10, p, 4, NULL, NULL), PS_ERR_INVALID);
    REFUSED(ps_power(node, 10, NULL, 4, &count, NULL), PS_ERR_INVALID);
    REFUSED(ps_power(NULL, 10, p, 4, &count, NULL), PS_ERR_INVALID);
    REFUSED(ps_energy(NULL, NULL, 0, &count), PS_ERR_INVALID);
    REFUSED(ps_domains(node, NULL, 0, NULL), PS_ERR_INVALID);
    REFUSED(ps_domains_json(node, NULL), PS_ERR_INVALID);
    REFUSED(ps_power_json(node, 10, NULL), PS_ERR_INVALID);
    REFUSED(ps_energy_json(NULL, &json), PS_ERR_INVALID);
    REFUSED(ps_caps_json(node, NULL, NULL), PS_ERR_INVALID);
    REFUSED(ps_node_is_simulated(NULL), PS_ERR_INVALID);

    /* A short array: the count says how many there are. */
    CHECK(ps_power(node, 10, p, 1, &count, NULL) == PS_OK && count > 1, "count %zu", count);
    CHECK(ps_domains(node, NULL, 0, &count) == PS_OK && count == n, "count only");

    ps_node *other = NULL;
    REFUSED(ps_node_open(NULL, NULL, "nonsense", &other), PS_ERR_INVALID);
    CHECK(strstr(ps_last_error(), "nonsense") != NULL, "names the profile");
    REFUSED(ps_node_open(NULL, NULL, "intel-2s", NULL), PS_ERR_INVALID);
    REFUSED(ps_node_open("/nonexistent/root", NULL, "off", &other), PS_ERR_INVALID);
    REFUSED(ps_node_open(NULL, "nosuchsource", "intel-2s", &other), PS_ERR_INVALID);
    CHECK(other == NULL, "no handle on a failure");
    ps_node_close(NULL);
    ps_string_free(NULL);
    same_limits(node, before, n, "after bad input");
}

struct worker {
    ps_node *node;
    int ok;
    char own_error[256];
};

static void *read_in_thread(void *arg) {
    struct worker *w = arg;
    w->ok = 1;
    for (int i = 0; i < 4; i++) {
        ps_power_reading p[MAX_DOMAINS];
        ps_energy_reading e[MAX_DOMAINS];
        size_t n = 0;
        double node_watts = 0;
        if (ps_power(w->node, 10, p, MAX_DOMAINS, &n, &node_watts) != PS_OK || !(node_watts > 0))
            w->ok = 0;
        if (ps_energy(w->node, e, MAX_DOMAINS, &n) != PS_OK) w->ok = 0;
    }
    /* This thread's own last error. */
    if (ps_power(w->node, 0, NULL, 0, NULL, NULL) != PS_ERR_INVALID) w->ok = 0;
    snprintf(w->own_error, sizeof w->own_error, "%s", ps_last_error());
    return NULL;
}

static void check_threads(ps_node *node) {
    REFUSED(ps_cap_socket(node, 9, 100, 0, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    char mine[256];
    snprintf(mine, sizeof mine, "%s", ps_last_error());
    struct worker w[2] = {{node, 0, ""}, {node, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, read_in_thread, &w[i]) == 0, "thread %d", i);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].ok, "thread %d read the shared handle", i);
        CHECK(strstr(w[i].own_error, "interval") != NULL, "thread %d: %s", i, w[i].own_error);
    }
    CHECK(strcmp(mine, ps_last_error()) == 0, "the last error is per thread: %s", ps_last_error());
}

static void check_gpu(void) {
    ps_node *node = open_sim("nvidia-4gpu");
    ps_domain d[MAX_DOMAINS];
    size_t n = domains(node, d);
    int gpus = 0;
    for (size_t i = 0; i < n; i++) gpus += d[i].kind == PS_KIND_GPU;
    CHECK(gpus == 4, "4 GPUs, got %d", gpus);
    const ps_domain *g1 = find(d, n, PS_KIND_GPU, 1);
    CHECK(g1 && g1->has_limit && low(g1) < 300 && g1->max_watts > 300, "GPU 1's range");
    double original = g1->limit_watts, gpu0 = find(d, n, PS_KIND_GPU, 0)->limit_watts;
    double before[MAX_DOMAINS];
    limits(node, before, &n);
    REFUSED(ps_cap_gpu(node, 7, 300, NULL, 0, NULL), PS_ERR_UNAVAILABLE);
    REFUSED(ps_cap_gpu(node, 1, g1->max_watts + 100, NULL, 0, NULL), PS_ERR_REFUSED);
    REFUSED(ps_cap_gpu(node, 1, NAN, NULL, 0, NULL), PS_ERR_REFUSED);
    same_limits(node, before, n, "after refused GPU caps");
    CHECK(ps_cap_gpu(node, 1, 300, NULL, 0, NULL) == PS_OK, "cap GPU 1");
    domains(node, d);
    CHECK(find(d, n, PS_KIND_GPU, 1)->limit_watts == 300, "GPU 1 at 300 W");
    CHECK(find(d, n, PS_KIND_GPU, 0)->limit_watts == gpu0, "GPU 0 untouched");
    CHECK(ps_cap_reset(node, NULL, 0, NULL) == PS_OK, "reset");
    domains(node, d);
    CHECK(find(d, n, PS_KIND_GPU, 1)->limit_watts == original, "reset restores GPU 1");
    ps_node_close(node);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "full";
    out_dir = argc > 2 ? argv[2] : NULL;
    if (strcmp(mode, "gpu") == 0) {
        check_gpu();
    } else {
        ps_node *node = open_sim("intel-2s");
        check_reading(node, strcmp(mode, "full") == 0);
        check_socket_cap(node);
        if (strcmp(mode, "full") == 0) {
            check_other_caps(node);
            check_bad_input(node);
            check_threads(node);
        } else {
            REFUSED(ps_cap_socket(node, 0, NAN, 0, NULL, 0, NULL), PS_ERR_REFUSED);
        }
        ps_node_close(node);
    }
    printf("PASS %s: %d checks\n", mode, checks);
    return 0;
}
