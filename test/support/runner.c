/* The test runner: every registered test in a forked child, with a timeout.
 *
 *   run_tests [-j N] [-v] [PATTERN...]
 *
 * Children run in parallel (-j, default 2: this is a 2-core box and the integration tests
 * start servers). A child that exits 0 passed; a signal, non-zero exit or the timeout
 * fails it, and its output is shown. The last line is "N passed, N failed". */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/test.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define MAX_TESTS 1024

typedef struct test {
    const char *name;
    test_fn fn;
    unsigned timeout_s;
    pid_t pid;
    double start;
    char out[64]; /* path of the child's captured output */
} test_t;

static test_t tests[MAX_TESTS];
static int ntests;

void test_register(const char *name, test_fn fn, unsigned timeout_s)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].timeout_s = timeout_s;
    ntests++;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const test_t *)a)->name, ((const test_t *)b)->name);
}

static bool selected(const char *name, int npat, char **pat)
{
    if (npat == 0)
        return true;
    for (int i = 0; i < npat; i++)
        if (fnmatch(pat[i], name, 0) == 0 || strcmp(pat[i], name) == 0)
            return true;
    return false;
}

static void start(test_t *t, const char *tmpdir)
{
    snprintf(t->out, sizeof(t->out), "%s/%d.out", tmpdir, (int)(t - tests));
    t->start = now_s();
    t->pid = fork();
    if (t->pid < 0) {
        perror("fork");
        exit(2);
    }
    if (t->pid == 0) {
        int fd = open(t->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setpgid(0, 0); /* the test and any server it starts die together on timeout */
        t->fn();
        fflush(NULL);
#ifdef HAVE_LSAN
        /* _exit skips LeakSanitizer's exit hook: check here, so a leak fails the test. */
        __lsan_do_leak_check();
#endif
        _exit(0);
    }
    setpgid(t->pid, t->pid);
}

static void show_output(const test_t *t)
{
    char buf[4096];
    FILE *f = fopen(t->out, "r");
    size_t n, total = 0;
    if (f == NULL)
        return;
    /* The tail is what matters; cap what is shown of a chatty test. */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    if (size > 16384)
        fseek(f, size - 16384, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && total < 16384) {
        fwrite(buf, 1, n, stdout);
        total += n;
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    int jobs = 2, verbose = 0, opt, passed = 0, failed = 0, running = 0, next = 0;
    char tmpdir[] = "/tmp/cim-tests-XXXXXX";
    int sel[MAX_TESTS], nsel = 0;

    while ((opt = getopt(argc, argv, "j:vl")) != -1) {
        if (opt == 'j')
            jobs = atoi(optarg) > 0 ? atoi(optarg) : 1;
        else if (opt == 'v')
            verbose = 1;
        else if (opt == 'l')
            verbose = 2;
        else {
            fprintf(stderr, "usage: run_tests [-j N] [-v] [-l] [PATTERN...]\n");
            return 2;
        }
    }
    qsort(tests, (size_t)ntests, sizeof(tests[0]), by_name);
    for (int i = 0; i < ntests; i++)
        if (selected(tests[i].name, argc - optind, argv + optind))
            sel[nsel++] = i;
    if (verbose == 2) {
        for (int i = 0; i < nsel; i++)
            printf("%s\n", tests[sel[i]].name);
        return 0;
    }
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    while (next < nsel || running > 0) {
        while (running < jobs && next < nsel) {
            start(&tests[sel[next++]], tmpdir);
            running++;
        }
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0) {
            double now = now_s();
            for (int i = 0; i < nsel; i++) {
                test_t *t = &tests[sel[i]];
                if (t->pid > 0 && now - t->start > t->timeout_s) {
                    kill(-t->pid, SIGKILL);
                    kill(t->pid, SIGKILL);
                }
            }
            usleep(2000);
            continue;
        }
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < nsel; i++) {
            test_t *t = &tests[sel[i]];
            if (t->pid != pid)
                continue;
            double el = now_s() - t->start;
            bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            kill(-t->pid, SIGKILL); /* leftovers of the test's process group */
            t->pid = 0;
            running--;
            if (ok) {
                passed++;
                printf("ok   %-48s %7.3f s\n", t->name, el);
                if (verbose)
                    show_output(t);
            } else {
                failed++;
                if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
                    el >= t->timeout_s)
                    printf("FAIL %-48s timed out after %u s\n", t->name, t->timeout_s);
                else if (WIFSIGNALED(status))
                    printf("FAIL %-48s signal %d\n", t->name, WTERMSIG(status));
                else
                    printf("FAIL %-48s exit %d\n", t->name, WEXITSTATUS(status));
                printf("---- output of %s ----\n", t->name);
                show_output(t);
                printf("---- end of %s ----\n", t->name);
            }
            unlink(t->out);
        }
    }
    rmdir(tmpdir);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}
