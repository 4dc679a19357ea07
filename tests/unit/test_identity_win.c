/* test_identity_win.c - Windows identity (run under wine): SIDs interned to
 * stable, distinct ids (names, SID text, well-known accounts), names back,
 * a real named pipe client completed by impersonation in this process, its
 * user and groups matched against lists, the token put on and taken off the
 * thread (in both modes), clients that refuse impersonation refused (in
 * both modes: an Identification-level token proves nothing), the primary
 * group never interned, a disabled group still matching deny lists, and a
 * full SID table refusing new principals. Wine does not enforce tokens: what
 * these tests prove is the bookkeeping and the calls, not that Windows denies a
 * file to another user (see the report in docs/windows.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include <windows.h>

#include <sddl.h>

#include "accesslog.h"
#include "config.h"
#include "identity.h"
#include "idlist.h"
#include "policy.h"

static int mode; /* identity_init(): 1 privileged, 0 not */
static struct identity_scratch scratch;

static int setup(void **state) {
  const char *why = NULL;
  (void)state;
  mode = identity_init(&why);
  assert_non_null(why);
  print_message("identity_init: %d: %s\n", mode, why);
  assert_true(mode == 0 || mode == 1);
  assert_int_equal(identity_privileged(), mode);
  assert_int_equal(identity_thread_init(), 0);
  return 0;
}

static unsigned uid_of(const char *name) {
  unsigned id = 0;
  int rc = identity_user_id(name, &id);
  if (rc != 0)
    fail_msg("identity_user_id(\"%s\") = %s", name, uv_strerror(rc));
  assert_true(id >= IDENTITY_ID_BASE && id != IDENTITY_ID_NONE);
  return id;
}

static unsigned gid_of(const char *name) {
  unsigned id = 0;
  int rc = identity_group_id(name, &id);
  if (rc != 0)
    fail_msg("identity_group_id(\"%s\") = %s", name, uv_strerror(rc));
  assert_true(id >= IDENTITY_ID_BASE && id != IDENTITY_ID_NONE);
  return id;
}

/* The current user's account name, UTF-8. */
static void my_name(char *buf, size_t len) {
  WCHAR w[256];
  DWORD n = 256;
  assert_true(GetUserNameW(w, &n));
  assert_true(
      WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)len, NULL, NULL) > 0);
}

static void interning(void **state) {
  char me[256];
  unsigned id;
  (void)state;

  /* One SID, however it is spelt, is one id. */
  unsigned sys = uid_of("S-1-5-18");
  assert_int_equal(uid_of("S-1-5-18"), sys);
  assert_int_equal(uid_of("SYSTEM"), sys);
  assert_int_equal(uid_of("NT AUTHORITY\\SYSTEM"), sys);
  /* as the access log prints it (name@DOMAIN), so it can be copied */
  assert_int_equal(uid_of("SYSTEM@NT AUTHORITY"), sys);
  unsigned admins = gid_of("Administrators");
  assert_int_equal(gid_of("S-1-5-32-544"), admins);
  assert_int_equal(gid_of("BUILTIN\\Administrators"), admins);
  assert_int_equal(gid_of("Administrators@BUILTIN"), admins);
  assert_int_not_equal(admins, sys);
  unsigned everyone = gid_of("S-1-1-0");
  assert_int_not_equal(everyone, admins);
  assert_int_not_equal(everyone, sys);

  /* The daemon's own user: by name, and identity_self_uid(). */
  my_name(me, sizeof(me));
  assert_int_equal(uid_of(me), identity_self_uid());
  assert_int_not_equal(identity_self_uid(), sys);

  /* No such principal, or the wrong kind for the list. */
  assert_int_equal(identity_user_id("no-such-user-pf", &id), UV_ENOENT);
  assert_int_equal(identity_group_id("no-such-group-pf", &id), UV_ENOENT);
  assert_int_equal(identity_user_id("", &id), UV_ENOENT);
  assert_int_equal(identity_user_id("S-1-x-y", &id), UV_ENOENT);
  assert_int_equal(identity_user_id("Administrators", &id), UV_ENOENT);
  assert_int_equal(identity_group_id(me, &id), UV_ENOENT);
  assert_int_equal(id, IDENTITY_ID_NONE);
}

static void names(void **state) {
  char buf[256], me[256], tiny[4] = "xyz";
  unsigned sys = uid_of("S-1-5-18"), nobody;
  (void)state;

  assert_int_equal(identity_user_name(sys, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "SYSTEM@NT AUTHORITY");
  assert_int_equal(identity_user_name(sys, tiny, sizeof(tiny)), UV_ENOBUFS);
  assert_string_equal(tiny, "");

  /* Our own user: name@DOMAIN, starting with the account name; printable
   * in the access log (no backslash: the text format's escape). */
  my_name(me, sizeof(me));
  assert_int_equal(identity_user_name(identity_self_uid(), buf, sizeof(buf)),
                   0);
  assert_non_null(strchr(buf, '@'));
  assert_int_equal(strncmp(buf, me, strlen(me)), 0);
  assert_int_equal(buf[strlen(me)], '@');
  assert_true(accesslog_user_printable(buf));

  /* Not an interned id: a Unix-style number names no one. */
  strcpy(buf, "junk");
  assert_int_equal(identity_user_name(1000, buf, sizeof(buf)), UV_ENOENT);
  assert_string_equal(buf, "");
  assert_int_equal(identity_user_name(IDENTITY_ID_BASE + IDENTITY_SIDS_MAX, buf,
                                      sizeof(buf)),
                   UV_ENOENT);

  /* A SID no account maps prints as itself. */
  nobody = uid_of("S-1-5-21-1111-2222-3333-4444");
  assert_int_equal(identity_user_name(nobody, buf, sizeof(buf)), 0);
  assert_string_equal(buf, "S-1-5-21-1111-2222-3333-4444");
}

/* ---- a real pipe client, in this process ------------------------------ */

struct pipe_pair {
  HANDLE server, client;
};

static void connect_pair(struct pipe_pair *p, DWORD sqos) {
  WCHAR name[128];
  char byte = 'x';
  DWORD n = 0;

  _snwprintf(name, 128, L"\\\\.\\pipe\\pf-ident-test-%lu",
             (unsigned long)GetCurrentProcessId());
  p->server =
      CreateNamedPipeW(name, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE | PIPE_WAIT, 1,
                       4096, 4096, 0, NULL);
  assert_true(p->server != INVALID_HANDLE_VALUE);
  p->client = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL,
                          OPEN_EXISTING, sqos, NULL);
  assert_true(p->client != INVALID_HANDLE_VALUE);
  if (!ConnectNamedPipe(p->server, NULL))
    assert_int_equal(GetLastError(), ERROR_PIPE_CONNECTED);
  /* Impersonation needs the client to have written. */
  assert_true(WriteFile(p->client, &byte, 1, &n, NULL));
  assert_true(ReadFile(p->server, &byte, 1, &n, NULL));
}

static void close_pair(struct pipe_pair *p) {
  CloseHandle(p->client);
  CloseHandle(p->server);
}

/* The user SID of the calling thread's token, or NULL (none). */
static int thread_token_user(unsigned *user) {
  HANDLE t;
  union {
    TOKEN_USER u;
    BYTE b[256];
  } buf;
  DWORD n;
  LPWSTR text = NULL;
  char u8[200];

  if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &t))
    return 0;
  assert_true(GetTokenInformation(t, TokenUser, &buf, sizeof(buf), &n));
  CloseHandle(t);
  assert_true(ConvertSidToStringSidW(buf.u.User.Sid, &text));
  WideCharToMultiByte(CP_UTF8, 0, text, -1, u8, sizeof(u8), NULL, NULL);
  LocalFree(text);
  *user = uid_of(u8);
  return 1;
}

/* The interned id of this process's primary group (interning it). */
static unsigned primary_group_id(void) {
  HANDLE t;
  union {
    TOKEN_PRIMARY_GROUP g;
    BYTE b[256];
  } buf;
  DWORD n;
  LPWSTR text = NULL;
  char u8[200];

  assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &t));
  assert_true(GetTokenInformation(t, TokenPrimaryGroup, &buf, sizeof(buf), &n));
  CloseHandle(t);
  assert_true(ConvertSidToStringSidW(buf.g.PrimaryGroup, &text));
  WideCharToMultiByte(CP_UTF8, 0, text, -1, u8, sizeof(u8), NULL, NULL);
  LocalFree(text);
  return gid_of(u8);
}

/* The level the pipe gives its server, read independently of identity_win.c
 * (to tell whether wine honoured a client's SQOS at all). */
static SECURITY_IMPERSONATION_LEVEL level_seen(HANDLE server) {
  SECURITY_IMPERSONATION_LEVEL l = SecurityAnonymous;
  HANDLE t;
  DWORD n;

  if (!ImpersonateNamedPipeClient(server))
    return SecurityAnonymous;
  if (OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &t)) {
    GetTokenInformation(t, TokenImpersonationLevel, &l, sizeof(l), &n);
    CloseHandle(t);
  }
  assert_true(RevertToSelf());
  return l;
}

static int member(WELL_KNOWN_SID_TYPE k) {
  BYTE sid[SECURITY_MAX_SID_SIZE];
  DWORD n = sizeof(sid);
  BOOL is = FALSE;
  assert_true(CreateWellKnownSid(k, NULL, sid, &n));
  assert_true(CheckTokenMembership(NULL, sid, &is));
  return is != 0;
}

static void list_of(struct idlist *l, int all, unsigned id) {
  memset(l, 0, sizeof(*l));
  l->all = all;
  if (!all) {
    l->n = 1;
    l->ids[0] = id;
  }
}

static void pipe_client(void **state) {
  struct pipe_pair p;
  struct identity id;
  struct idlist l;
  unsigned uid = 0, gid = 0, u = 0;
  int admin = member(WinBuiltinAdministratorsSid);
  (void)state;

  connect_pair(&p, 0);
  assert_int_equal(identity_peer(p.server, &id), 0);
  assert_int_equal(id.pid, (uv_pid_t)GetCurrentProcessId());
  /* Counting key at accept: our process's user. */
  assert_int_equal(identity_user_key(&id), identity_self_uid());

  /* Not complete yet: nothing granted, root for serve_root_clients. */
  list_of(&l, 0, gid_of("S-1-1-0"));
  assert_int_equal(identity_group_in(&id, &l), 0);
  assert_int_equal(identity_is_root(&id), 1);
  assert_int_equal(identity_enter(&id), UV_EPERM);

  unsigned before = uid_of("S-1-5-21-7-7-7-1");
  assert_int_equal(identity_complete(&id, p.server, &scratch), 0);
  /* The impersonation is over: no token left on this thread. */
  assert_int_equal(thread_token_user(&u), 0);

  /* The token's primary group (its holder may set it to a per-logon SID)
   * costs no table entry: completing interned nothing new (our user was in
   * already), and the log's gid is "none". */
  assert_int_equal(uid_of("S-1-5-21-7-7-7-2"), before + 1);
  {
    unsigned pg = primary_group_id();
    if (pg == before + 2)
      print_message("primary group was not interned before: the check above "
                    "is meaningful\n");
    else
      print_message("note: the primary group was interned earlier (id %u), "
                    "so the check above proves less\n",
                    pg);
  }
  assert_int_equal(identity_log_ids(&id, &uid, &gid), 0);
  assert_int_equal(uid, identity_self_uid());
  assert_int_equal(gid, IDENTITY_ID_NONE);
  /* Root is LocalSystem only; an elevated administrator (wine's user is
   * one) is not. */
  assert_int_equal(identity_is_root(&id), member(WinLocalSystemSid));
  print_message("client token: %s\n",
                admin ? "Administrators enabled" : "not an administrator");

  list_of(&l, 0, identity_self_uid());
  assert_int_equal(identity_user_in(&id, &l), 1);
  list_of(&l, 0, uid_of("S-1-5-18"));
  assert_int_equal(identity_user_in(&id, &l), 0);
  list_of(&l, 1, 0);
  assert_int_equal(identity_user_in(&id, &l), 1);
  assert_int_equal(identity_group_in(&id, &l), 1);
  list_of(&l, 0, gid_of("S-1-1-0"));
  assert_int_equal(identity_group_in(&id, &l), member(WinWorldSid));
  list_of(&l, 0, gid_of("S-1-5-32-544"));
  assert_int_equal(identity_group_in(&id, &l), admin);
  list_of(&l, 0, uid_of("S-1-5-21-1111-2222-3333-4445"));
  assert_int_equal(identity_group_in(&id, &l), 0);

  /* Acting as the client: in both modes the thread wears its token. */
  assert_int_equal(identity_enter(&id), 0);
  assert_int_equal(thread_token_user(&u), 1);
  assert_int_equal(u, identity_self_uid());
  identity_leave();
  assert_int_equal(thread_token_user(&u), 0);

  /* The next request of the connection reuses the token. */
  assert_int_equal(identity_complete(&id, p.server, &scratch), 0);
  assert_int_equal(identity_enter(&id), 0);
  identity_leave();

  /* Another connection completed on this worker: the first one's token is
   * gone from the scratch, and it is not served with the other's. */
  {
    struct pipe_pair q;
    struct identity other;
    close_pair(&p);
    connect_pair(&q, 0);
    assert_int_equal(identity_peer(q.server, &other), 0);
    assert_int_equal(identity_complete(&other, q.server, &scratch), 0);
    assert_int_equal(identity_enter(&id), UV_EPERM);
    assert_int_equal(identity_enter(&other), 0);
    identity_leave();
    close_pair(&q);
  }
}

/* policy.c with a real client and lists read from ini text by config.c:
 * names and SIDs resolve to the ids the client is matched with. */
static int policy_for(struct identity *id, const char *fmt, const char *arg) {
  struct config c;
  char text[512], err[CONFIG_ERR_MAX] = "";
  const char *why = NULL;
  int rc;

  snprintf(text, sizeof(text), fmt, arg, arg);
  rc = config_parse(&c, "x.ini", text, err, sizeof(err));
  if (rc != 0)
    fail_msg("config: %s", err);
  rc = policy_check(&c, id, &why);
  if (rc != 0)
    print_message("  refused: %s\n", why);
  return rc;
}

static void policy_real_client(void **state) {
  struct pipe_pair p;
  struct identity id;
  char me[256];
  (void)state;

  my_name(me, sizeof(me));
  connect_pair(&p, 0);
  assert_int_equal(identity_peer(p.server, &id), 0);
  assert_int_equal(identity_complete(&id, p.server, &scratch), 0);

  assert_int_equal(policy_for(&id, "[identity]\n", ""), 0);
  assert_int_equal(policy_for(&id, "[identity]\nallow_users = %s\n", me), 0);
  assert_int_equal(
      policy_for(&id, "[identity]\nallow_users = SYSTEM, %s\n", me), 0);
  assert_int_equal(policy_for(&id, "[identity]\ndeny_users = %s\n", me),
                   UV_EPERM);
  assert_int_equal(policy_for(&id, "[identity]\nallow_users = %s\n", "SYSTEM"),
                   UV_EPERM);
  /* A Unix-style number names no Windows principal: the config says so. */
  {
    struct config c;
    char err[CONFIG_ERR_MAX] = "";
    assert_int_equal(config_parse(&c, "x.ini",
                                  "[identity]\nallow_users = 1000\n", err,
                                  sizeof(err)),
                     UV_EINVAL);
    assert_string_equal(
        err, "x.ini:2: [identity] allow_users: unknown user \"1000\"");
  }
  assert_int_equal(policy_for(&id, "[identity]\nallow_groups = %s\n",
                              "S-1-5-21-1111-2222-3333-4446"),
                   UV_EPERM);
  if (member(WinWorldSid)) {
    assert_int_equal(
        policy_for(&id, "[identity]\nallow_groups = %s\n", "Everyone"), 0);
    assert_int_equal(
        policy_for(&id, "[identity]\ndeny_groups = %s\n", "S-1-1-0"), UV_EPERM);
  }
  close_pair(&p);
}

/* A client that allowed only Identification (or Anonymous) is refused in
 * both modes: it cannot be acted as, and an Identification-level token may
 * be one the client holds of somebody else (any pipe server gets its
 * clients' tokens at that level), so comparing its SIDs would prove
 * nothing. */
static void refuses_identification(void **state) {
  static const struct {
    DWORD sqos;
    SECURITY_IMPERSONATION_LEVEL want;
    const char *name;
  } cases[] = {
      {SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, SecurityIdentification,
       "Identification"},
      {SECURITY_SQOS_PRESENT | SECURITY_ANONYMOUS, SecurityAnonymous,
       "Anonymous"},
  };
  int tested = 0;
  (void)state;

  for (size_t i = 0; i < 2; i++) {
    struct pipe_pair p;
    struct identity id;
    SECURITY_IMPERSONATION_LEVEL got;
    int rc;

    connect_pair(&p, cases[i].sqos);
    got = level_seen(p.server);
    if (got != cases[i].want) {
      print_message("SKIP %s: the pipe gave level %d, not %d: this wine does "
                    "not honour the client's SQOS\n",
                    cases[i].name, (int)got, (int)cases[i].want);
      close_pair(&p);
      continue;
    }
    assert_int_equal(identity_peer(p.server, &id), 0);
    rc = identity_complete(&id, p.server, &scratch);
    assert_int_equal(rc, UV_EPERM);
    assert_int_equal(identity_enter(&id), UV_EPERM);
    close_pair(&p);
    tested++;
  }
  if (tested == 0)
    skip();
}

/* A group the client disabled (AdjustTokenGroups, allowed for any group not
 * marked mandatory) grants nothing, but still matches deny lists: else a
 * client could dodge deny_groups by disabling it. Done on this process's
 * token (the pipe client), restored after. */
static void deny_disabled_group(void **state) {
  static uint64_t info[8192];
  TOKEN_GROUPS *g = (TOKEN_GROUPS *)info;
  TOKEN_GROUPS one;
  HANDLE t;
  DWORD n, k;
  LPWSTR text = NULL;
  char u8[200];
  struct pipe_pair p;
  struct identity id;
  struct idlist l;
  (void)state;

  assert_true(OpenProcessToken(GetCurrentProcess(),
                               TOKEN_QUERY | TOKEN_ADJUST_GROUPS, &t));
  assert_true(GetTokenInformation(t, TokenGroups, g, sizeof(info), &n));
  for (k = 0; k < g->GroupCount; k++) {
    DWORD a = g->Groups[k].Attributes;
    if ((a & SE_GROUP_ENABLED) &&
        !(a & (SE_GROUP_MANDATORY | SE_GROUP_INTEGRITY |
               SE_GROUP_USE_FOR_DENY_ONLY)))
      break;
  }
  if (k == g->GroupCount) {
    print_message("SKIP disabled groups: every enabled group of this token "
                  "is mandatory, none can be disabled\n");
    CloseHandle(t);
    skip();
  }
  one.GroupCount = 1;
  one.Groups[0].Sid = g->Groups[k].Sid;
  one.Groups[0].Attributes = 0; /* disabled */
  if (!AdjustTokenGroups(t, FALSE, &one, 0, NULL, NULL) ||
      GetLastError() != ERROR_SUCCESS) {
    print_message("SKIP disabled groups: AdjustTokenGroups failed (%lu)\n",
                  (unsigned long)GetLastError());
    CloseHandle(t);
    skip();
  }
  assert_true(ConvertSidToStringSidW(one.Groups[0].Sid, &text));
  WideCharToMultiByte(CP_UTF8, 0, text, -1, u8, sizeof(u8), NULL, NULL);
  LocalFree(text);
  print_message("disabled %s in the client's token\n", u8);

  connect_pair(&p, 0);
  assert_int_equal(identity_peer(p.server, &id), 0);
  assert_int_equal(identity_complete(&id, p.server, &scratch), 0);
  list_of(&l, 0, gid_of(u8));
  assert_int_equal(identity_group_in(&id, &l), 0);     /* grants nothing */
  assert_int_equal(identity_group_denied(&id, &l), 1); /* still denied */
  assert_int_equal(policy_for(&id, "[identity]\ndeny_groups = %s\n", u8),
                   UV_EPERM);
  close_pair(&p);

  one.Groups[0].Attributes = SE_GROUP_ENABLED;
  assert_true(AdjustTokenGroups(t, FALSE, &one, 0, NULL, NULL));
  CloseHandle(t);
}

/* Last: fills the process's table. New principals are refused once it is
 * full; those already in it keep their ids. */
static void table_full(void **state) {
  char sid[64];
  unsigned first = 0, id = 0, prev = 0;
  int rc = 0, n;
  (void)state;

  for (n = 0; n <= IDENTITY_SIDS_MAX; n++) {
    snprintf(sid, sizeof(sid), "S-1-5-21-9-9-9-%d", n);
    rc = identity_user_id(sid, &id);
    if (rc != 0)
      break;
    if (n == 0)
      first = id;
    else
      assert_int_equal(id, prev + 1); /* each new SID a new id */
    prev = id;
  }
  assert_int_equal(rc, UV_ENOMEM);
  assert_true(n > 0 && n < IDENTITY_SIDS_MAX);
  assert_int_equal(id, IDENTITY_ID_NONE);
  assert_int_equal(identity_user_id("S-1-5-21-9-9-9-0", &id), 0);
  assert_int_equal(id, first);
  assert_int_equal(uid_of("S-1-5-18"), uid_of("SYSTEM"));
  assert_int_equal(identity_group_id("S-1-5-21-9-9-8-1", &id), UV_ENOMEM);
}

/* ---- unprivileged mode, in a child process ---------------------------- */

/* Run in a child started with --unprivileged, after SeImpersonatePrivilege
 * was removed from its token: the same user is served, impersonated (its
 * token on the thread, as in privileged mode: a same-user token takes
 * without the privilege), the mode says so. */
static void unpriv_same_user(void **state) {
  struct pipe_pair p;
  struct identity id;
  unsigned u;
  (void)state;

  assert_int_equal(mode, 0);
  connect_pair(&p, 0);
  assert_int_equal(identity_peer(p.server, &id), 0);
  assert_int_equal(identity_complete(&id, p.server, &scratch), 0);
  assert_int_equal(identity_enter(&id), 0);
  assert_int_equal(thread_token_user(&u), 1); /* acting as the client */
  assert_int_equal(u, identity_self_uid());
  identity_leave();
  assert_int_equal(thread_token_user(&u), 0);
  close_pair(&p);
}

static int drop_impersonate(void) {
  HANDLE t;
  TOKEN_PRIVILEGES tp;
  BOOL ok;

  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES, &t))
    return 0;
  tp.PrivilegeCount = 1;
  ok = LookupPrivilegeValueW(NULL, L"SeImpersonatePrivilege",
                             &tp.Privileges[0].Luid);
  tp.Privileges[0].Attributes = SE_PRIVILEGE_REMOVED;
  ok = ok && AdjustTokenPrivileges(t, FALSE, &tp, 0, NULL, NULL) &&
       GetLastError() == ERROR_SUCCESS;
  CloseHandle(t);
  return ok;
}

/* The parent's side: the child must pass. */
static void unprivileged_mode(void **state) {
  WCHAR exe[MAX_PATH], cmd[MAX_PATH + 32];
  STARTUPINFOW si;
  PROCESS_INFORMATION pi;
  DWORD code = 1;
  (void)state;

  assert_true(GetModuleFileNameW(NULL, exe, MAX_PATH) > 0);
  _snwprintf(cmd, MAX_PATH + 32, L"\"%ls\" --unprivileged", exe);
  cmd[MAX_PATH + 31] = L'\0';
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  assert_true(
      CreateProcessW(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
  assert_int_equal(WaitForSingleObject(pi.hProcess, 60000), WAIT_OBJECT_0);
  assert_true(GetExitCodeProcess(pi.hProcess, &code));
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  if (code == 77)
    skip(); /* the child said why */
  assert_int_equal(code, 0);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--unprivileged") == 0) {
    const struct CMUnitTest child[] = {
        cmocka_unit_test(unpriv_same_user),
        cmocka_unit_test(refuses_identification),
    };
    if (!drop_impersonate()) {
      print_message("SKIP unprivileged mode: cannot remove "
                    "SeImpersonatePrivilege from this process's token\n");
      return 77;
    }
    return cmocka_run_group_tests(child, setup, NULL);
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(interning),
      cmocka_unit_test(names),
      cmocka_unit_test(pipe_client),
      cmocka_unit_test(policy_real_client),
      cmocka_unit_test(refuses_identification),
      cmocka_unit_test(deny_disabled_group),
      cmocka_unit_test(unprivileged_mode),
      cmocka_unit_test(table_full),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
