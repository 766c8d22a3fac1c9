/* platform_win32.c - platform.h on Windows: the Service Control Manager, pid files, events
 *
 * A service started by the SCM calls platform_daemonize() (service.c does so when it is
 * not in the foreground): a thread runs StartServiceCtrlDispatcherW, whose ServiceMain
 * registers the control handler and reports START_PENDING; the service starts and
 * platform_ready() reports RUNNING (or STOPPED with the error, which also goes to the
 * Application event log). The control handler turns STOP and SHUTDOWN into
 * PLATFORM_EV_STOP, PAUSE and CONTINUE into PLATFORM_EV_PAUSE / _CONTINUE, and answers
 * INTERROGATE; service.c's main thread waits for those events as it does for signals on
 * POSIX, and an atexit() handler reports STOPPED when the process ends. In the foreground
 * Ctrl-C, Ctrl-Break and closing the console are a stop.
 *
 * --install registers "<exe> --root ROOT" as an auto-start service running as
 * NT AUTHORITY\LocalService, restarted by the SCM 2 s after a crash; --uninstall stops it
 * (waiting up to 30 s) and deletes it.
 *
 * The pid file is locked with LockFileEx on a byte far past its end, so the pid itself
 * stays readable by platform_pidfile_owner() while the lock is held.
 *
 * SECURITY: the service account is chosen at --install (LocalService, no network
 * credentials, no administrator rights); [System] User has no meaning here and is
 * ignored. Paths are converted from UTF-8 to UTF-16 with the W functions throughout.
 */
#include "platform.h"

#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_OFFSET  0x40000000u /* the byte locked in a pid file */
#define QUEUE_SIZE   16
#define START_HINT   60000 /* ms the SCM should wait for START_PENDING to move on */
#define STOP_HINT    30000
#define PAUSE_HINT   5000
#define STOP_TIMEOUT 30000 /* --uninstall waits this long for the service to stop */

static __thread char platform_error[512];

/* ---- events ------------------------------------------------------------------------- */

static CRITICAL_SECTION queue_lock;
static CONDITION_VARIABLE queue_cond;
static enum platform_event queue[QUEUE_SIZE];
static unsigned queue_head, queue_len;
static INIT_ONCE queue_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK queue_init(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    InitializeCriticalSection(&queue_lock);
    InitializeConditionVariable(&queue_cond);
    return TRUE;
}

static void push_event(enum platform_event ev)
{
    InitOnceExecuteOnce(&queue_once, queue_init, NULL, NULL);
    EnterCriticalSection(&queue_lock);
    if (queue_len < QUEUE_SIZE) {
        queue[(queue_head + queue_len) % QUEUE_SIZE] = ev;
        queue_len++;
    } else if (ev == PLATFORM_EV_STOP) { /* a stop is never lost */
        queue[(queue_head + queue_len - 1) % QUEUE_SIZE] = ev;
    }
    WakeConditionVariable(&queue_cond);
    LeaveCriticalSection(&queue_lock);
}

enum platform_event platform_wait_event(void)
{
    InitOnceExecuteOnce(&queue_once, queue_init, NULL, NULL);
    EnterCriticalSection(&queue_lock);
    while (queue_len == 0)
        SleepConditionVariableCS(&queue_cond, &queue_lock, INFINITE);
    enum platform_event ev = queue[queue_head];
    queue_head = (queue_head + 1) % QUEUE_SIZE;
    queue_len--;
    LeaveCriticalSection(&queue_lock);
    return ev;
}

void platform_request_stop(void)
{
    push_event(PLATFORM_EV_STOP);
}

static BOOL WINAPI console_handler(DWORD type)
{
    switch (type) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_SHUTDOWN_EVENT: push_event(PLATFORM_EV_STOP); return TRUE;
    default: return FALSE;
    }
}

void platform_signals_init(void)
{
    InitOnceExecuteOnce(&queue_once, queue_init, NULL, NULL);
    SetConsoleCtrlHandler(console_handler, TRUE);
}

/* ---- text --------------------------------------------------------------------------- */

/* A UTF-16 copy of a UTF-8 string (free() it), or NULL. */
static wchar_t *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) return NULL;
    wchar_t *w = malloc((size_t)n * sizeof(wchar_t));
    if (w == NULL) return NULL;
    if (MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    return w;
}

/* Sets *error_r to "what: <the system's message for err>". */
static void win_error(const char **error_r, const char *what, DWORD err)
{
    char msg[256] = "";
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, err,
                             0, msg, sizeof(msg), NULL);
    while (n > 0 && (msg[n - 1] == '\r' || msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    snprintf(platform_error, sizeof(platform_error), "%s: %s (error %lu)", what,
             n ? msg : "unknown error", (unsigned long)err);
    *error_r = platform_error;
}

/* ---- the Service Control Manager ---------------------------------------------------- */

static wchar_t service_name[256];
static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS status;
static CRITICAL_SECTION status_lock;
static HANDLE registered;   /* set once ServiceMain has registered (or failed) */
static HANDLE process_done; /* set at exit: ServiceMain may return */
static DWORD dispatcher_error;
static bool under_scm;
static bool start_failed;

/* Logs text to the Application event log as coming from this service. */
static void event_log(WORD type, const char *text)
{
    HANDLE src = RegisterEventSourceW(NULL, service_name[0] ? service_name : L"alkaid");
    if (src == NULL) return;
    wchar_t *w = widen(text);
    LPCWSTR strings[1] = {w ? w : L"(message not representable)"};
    ReportEventW(src, type, 0, 1, NULL, 1, 0, strings, NULL);
    free(w);
    DeregisterEventSource(src);
}

static void set_state(DWORD state, DWORD hint)
{
    if (status_handle == NULL) return;
    EnterCriticalSection(&status_lock);
    status.dwCurrentState = state;
    status.dwWaitHint = hint;
    status.dwControlsAccepted =
        state == SERVICE_START_PENDING || state == SERVICE_STOPPED
            ? 0
            : SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN | SERVICE_ACCEPT_PAUSE_CONTINUE;
    if (state == SERVICE_RUNNING || state == SERVICE_STOPPED || state == SERVICE_PAUSED)
        status.dwCheckPoint = 0;
    else
        status.dwCheckPoint++;
    SetServiceStatus(status_handle, &status);
    LeaveCriticalSection(&status_lock);
}

static DWORD WINAPI control_handler(DWORD control, DWORD type, LPVOID data, LPVOID ctx)
{
    (void)type;
    (void)data;
    (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        set_state(SERVICE_STOP_PENDING, STOP_HINT);
        push_event(PLATFORM_EV_STOP);
        return NO_ERROR;
    case SERVICE_CONTROL_PAUSE:
        set_state(SERVICE_PAUSE_PENDING, PAUSE_HINT);
        push_event(PLATFORM_EV_PAUSE);
        return NO_ERROR;
    case SERVICE_CONTROL_CONTINUE:
        set_state(SERVICE_CONTINUE_PENDING, PAUSE_HINT);
        push_event(PLATFORM_EV_CONTINUE);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        EnterCriticalSection(&status_lock);
        SetServiceStatus(status_handle, &status);
        LeaveCriticalSection(&status_lock);
        return NO_ERROR;
    default: return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
    (void)argc;
    (void)argv;
    status_handle = RegisterServiceCtrlHandlerExW(service_name, control_handler, NULL);
    if (status_handle == NULL) {
        dispatcher_error = GetLastError();
        SetEvent(registered);
        return;
    }
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    set_state(SERVICE_START_PENDING, START_HINT);
    under_scm = true;
    SetEvent(registered);
    /* the service runs on the process's main thread; this one only waits for the end */
    WaitForSingleObject(process_done, INFINITE);
}

static DWORD WINAPI dispatcher_thread(LPVOID arg)
{
    (void)arg;
    SERVICE_TABLE_ENTRYW table[] = {{service_name, service_main}, {NULL, NULL}};
    if (!StartServiceCtrlDispatcherW(table)) {
        dispatcher_error = GetLastError();
        SetEvent(registered);
    }
    return 0;
}

static void report_stopped(void)
{
    if (!under_scm) return;
    EnterCriticalSection(&status_lock);
    if (start_failed) {
        status.dwWin32ExitCode = ERROR_SERVICE_SPECIFIC_ERROR;
        status.dwServiceSpecificExitCode = 1;
    }
    LeaveCriticalSection(&status_lock);
    set_state(SERVICE_STOPPED, 0);
    SetEvent(process_done);
}

int platform_daemonize(const char **error_r)
{
    /* the service's name is the program's: alkaid-smtpd.exe -> alkaid-smtpd */
    wchar_t path[MAX_PATH];
    DWORD n = GetModuleFileNameW(NULL, path, MAX_PATH);
    if (n == 0 || n == MAX_PATH) {
        win_error(error_r, "cannot find the program's name", GetLastError());
        return -1;
    }
    wchar_t *base = wcsrchr(path, L'\\');
    base = base ? base + 1 : path;
    wchar_t *dot = wcsrchr(base, L'.');
    if (dot) *dot = L'\0';
    wcsncpy(service_name, base, sizeof(service_name) / sizeof(service_name[0]) - 1);

    InitializeCriticalSection(&status_lock);
    registered = CreateEventW(NULL, TRUE, FALSE, NULL);
    process_done = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (registered == NULL || process_done == NULL) {
        win_error(error_r, "cannot create an event", GetLastError());
        return -1;
    }
    HANDLE t = CreateThread(NULL, 0, dispatcher_thread, NULL, 0, NULL);
    if (t == NULL) {
        win_error(error_r, "cannot start the service dispatcher", GetLastError());
        return -1;
    }
    CloseHandle(t);
    WaitForSingleObject(registered, INFINITE);
    if (!under_scm) {
        if (dispatcher_error == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT) {
            snprintf(platform_error, sizeof(platform_error),
                     "not started by the Service Control Manager: run it with --foreground, "
                     "or register it with --install and use \"sc start %ls\"",
                     service_name);
            *error_r = platform_error;
        } else {
            win_error(error_r, "cannot connect to the Service Control Manager", dispatcher_error);
        }
        return -1;
    }
    atexit(report_stopped);
    return 0;
}

void platform_ready(const char *error)
{
    if (!under_scm) return;
    if (error == NULL) {
        set_state(SERVICE_RUNNING, 0);
        return;
    }
    start_failed = true;
    event_log(EVENTLOG_ERROR_TYPE, error);
}

void platform_event_handled(enum platform_event ev)
{
    if (ev == PLATFORM_EV_PAUSE)
        set_state(SERVICE_PAUSED, 0);
    else if (ev == PLATFORM_EV_CONTINUE)
        set_state(SERVICE_RUNNING, 0);
}

/* ---- pid files ---------------------------------------------------------------------- */

int platform_pidfile(const char *path, const char **error_r)
{
    wchar_t *w = widen(path);
    if (w == NULL) {
        snprintf(platform_error, sizeof(platform_error), "%s: not a UTF-8 path", path);
        *error_r = platform_error;
        return -1;
    }
    HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        win_error(error_r, path, GetLastError());
        return -1;
    }
    OVERLAPPED ov = {0};
    ov.Offset = LOCK_OFFSET;
    if (!LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov)) {
        char buf[32] = "";
        DWORD got = 0;
        if (ReadFile(h, buf, sizeof(buf) - 1, &got, NULL)) buf[got] = '\0';
        buf[strcspn(buf, "\r\n")] = '\0';
        snprintf(platform_error, sizeof(platform_error),
                 "already running on this root (pid %s, %s)", buf[0] ? buf : "?", path);
        *error_r = platform_error;
        CloseHandle(h);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof(pid), "%lu\r\n", (unsigned long)GetCurrentProcessId());
    DWORD put = 0;
    if (SetFilePointer(h, 0, NULL, FILE_BEGIN) == INVALID_SET_FILE_POINTER || !SetEndOfFile(h) ||
        !WriteFile(h, pid, (DWORD)len, &put, NULL) || put != (DWORD)len) {
        win_error(error_r, path, GetLastError());
        CloseHandle(h);
        return -1;
    }
    /* an int descriptor, so that service.c's close() releases handle and lock */
    int fd = _open_osfhandle((intptr_t)h, _O_RDWR);
    if (fd < 0) {
        CloseHandle(h);
        snprintf(platform_error, sizeof(platform_error), "%s: out of file descriptors", path);
        *error_r = platform_error;
        return -1;
    }
    return fd;
}

void platform_pidfile_remove(const char *path)
{
    wchar_t *w = widen(path);
    if (w) DeleteFileW(w); /* FILE_SHARE_DELETE: gone once the last handle closes */
    free(w);
}

long platform_pidfile_owner(const char *path)
{
    wchar_t *w = widen(path);
    if (w == NULL) return 0;
    HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) return 0;
    long pid = 0;
    OVERLAPPED ov = {0};
    ov.Offset = LOCK_OFFSET;
    if (LockFileEx(h, LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ov)) {
        UnlockFileEx(h, 0, 1, 0, &ov); /* nobody holds it: stale */
    } else if (GetLastError() == ERROR_LOCK_VIOLATION) {
        char buf[32];
        DWORD got = 0;
        if (ReadFile(h, buf, sizeof(buf) - 1, &got, NULL) && got > 0) {
            buf[got] = '\0';
            pid = strtol(buf, NULL, 10);
        }
    }
    CloseHandle(h);
    return pid;
}

/* ---- privileges ------------------------------------------------------------------------ */

int platform_drop_privileges(const char *user, const char **error_r)
{
    /* the account is the service's (chosen at --install); [System] User is ignored */
    (void)user;
    (void)error_r;
    return 0;
}

void platform_chown_to(const char *path, const char *user)
{
    (void)path;
    (void)user;
}

/* ---- --install / --uninstall --------------------------------------------------------------- */

int platform_service_install(const char *name, const char *title, const char *root,
                             const char **error_r)
{
    wchar_t exe[MAX_PATH];
    DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);
    if (n == 0 || n == MAX_PATH) {
        win_error(error_r, "cannot find the program's path", GetLastError());
        return -1;
    }
    char full_root[MAX_PATH * 3];
    wchar_t *wroot = widen(root);
    wchar_t wfull[MAX_PATH];
    if (wroot == NULL || GetFullPathNameW(wroot, MAX_PATH, wfull, NULL) == 0) {
        free(wroot);
        snprintf(platform_error, sizeof(platform_error), "%s: not a usable path", root);
        *error_r = platform_error;
        return -1;
    }
    free(wroot);
    WideCharToMultiByte(CP_UTF8, 0, wfull, -1, full_root, sizeof(full_root), NULL, NULL);

    wchar_t cmd[MAX_PATH * 2 + 64];
    _snwprintf(cmd, sizeof(cmd) / sizeof(cmd[0]), L"\"%ls\" --root \"%ls\"", exe, wfull);
    cmd[sizeof(cmd) / sizeof(cmd[0]) - 1] = L'\0';
    char svc[128], display[160], desc[256];
    snprintf(svc, sizeof(svc), "alkaid-%s", name);
    snprintf(display, sizeof(display), "Alkaid %s Service", title);
    snprintf(desc, sizeof(desc), "Alkaid mail server: %s service (alkaid-%s), root %s", title, name,
             full_root);
    wchar_t *wsvc = widen(svc), *wdisplay = widen(display), *wdesc = widen(desc);
    int ret = -1;
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CREATE_SERVICE);
    if (scm == NULL) {
        win_error(error_r, "cannot open the Service Control Manager (run as administrator)",
                  GetLastError());
        goto out;
    }
    SC_HANDLE s = CreateServiceW(scm, wsvc, wdisplay, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                                 SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL, NULL,
                                 L"Tcpip\0\0", L"NT AUTHORITY\\LocalService", NULL);
    if (s == NULL) {
        win_error(error_r, svc, GetLastError());
        CloseServiceHandle(scm);
        goto out;
    }
    SERVICE_DESCRIPTIONW d = {wdesc};
    ChangeServiceConfig2W(s, SERVICE_CONFIG_DESCRIPTION, &d);
    /* like systemd's Restart=on-failure: the SCM starts a crashed service again */
    SC_ACTION actions[3] = {
        {SC_ACTION_RESTART, 2000}, {SC_ACTION_RESTART, 10000}, {SC_ACTION_RESTART, 60000}};
    SERVICE_FAILURE_ACTIONSW fa = {86400, NULL, NULL, 3, actions};
    ChangeServiceConfig2W(s, SERVICE_CONFIG_FAILURE_ACTIONS, &fa);
    CloseServiceHandle(s);
    CloseServiceHandle(scm);
    ret = 0;
out:
    free(wsvc);
    free(wdisplay);
    free(wdesc);
    return ret;
}

int platform_service_uninstall(const char *name, const char **error_r)
{
    char svc[128];
    snprintf(svc, sizeof(svc), "alkaid-%s", name);
    wchar_t *wsvc = widen(svc);
    int ret = -1;
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    if (scm == NULL) {
        win_error(error_r, "cannot open the Service Control Manager (run as administrator)",
                  GetLastError());
        goto out;
    }
    SC_HANDLE s = OpenServiceW(scm, wsvc, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
    if (s == NULL) {
        win_error(error_r, svc, GetLastError());
        CloseServiceHandle(scm);
        goto out;
    }
    SERVICE_STATUS st;
    if (QueryServiceStatus(s, &st) && st.dwCurrentState != SERVICE_STOPPED) {
        ControlService(s, SERVICE_CONTROL_STOP, &st);
        for (DWORD waited = 0; waited < STOP_TIMEOUT; waited += 250) {
            if (!QueryServiceStatus(s, &st) || st.dwCurrentState == SERVICE_STOPPED) break;
            Sleep(250);
        }
    }
    if (!DeleteService(s)) {
        win_error(error_r, svc, GetLastError());
    } else {
        ret = 0;
    }
    CloseServiceHandle(s);
    CloseServiceHandle(scm);
out:
    free(wsvc);
    return ret;
}
