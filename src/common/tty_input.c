/* tty_input.c - line and secret input for the command-line tools (tty_input.h) */
#include "tty_input.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <termios.h>
#include <unistd.h>

static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void restore_echo_and_die(int sig)
{
    if (echo_off) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

int tty_read_line(char *buf, size_t size, size_t *len_r, bool *too_long_r)
{
    size_t n = 0;
    bool got = false, too_long = false;
    for (;;) {
        char ch;
        ssize_t r = read(STDIN_FILENO, &ch, 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got = true;
        if (ch == '\n') break;
        if (n + 1 >= size) {
            too_long = true;
            continue;
        }
        buf[n++] = ch;
    }
    if (n > 0 && buf[n - 1] == '\r') n--;
    buf[n] = '\0';
    *len_r = n;
    if (too_long_r) *too_long_r = too_long;
    return got && !too_long ? 0 : -1;
}

int tty_prompt_secret(const char *text, char *buf, size_t size, size_t *len_r, bool *too_long_r)
{
    if (too_long_r) *too_long_r = false;
    fputs(text, stderr);
    fflush(stderr);
    if (tcgetattr(STDIN_FILENO, &saved_tio) < 0) return -1;
    struct termios tio = saved_tio;
    tio.c_lflag &= ~(tcflag_t)ECHO;
    tio.c_lflag |= ECHONL;
    struct sigaction sa = {.sa_handler = restore_echo_and_die}, old[3];
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, &old[i]);
    echo_off = 1;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio);
    int r = tty_read_line(buf, size, len_r, too_long_r);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    echo_off = 0;
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &old[i], NULL);
    return r;
}
