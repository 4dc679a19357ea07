/* identity_win.c - who a pipe client is, and acting as it, on Windows.
 *
 * Owns: the process-wide table of interned SIDs (the "ids" of identity.h),
 * the daemon's own token facts, and impersonation of pipe clients on worker
 * threads.
 *
 * A principal is a SID. Logic files count and compare numbers, so SIDs are
 * interned: IDENTITY_ID_BASE + their index in a bounded table that only
 * grows (identity_os.h). A client is known in two steps:
 *  - at accept (identity_peer), only its pid: impersonating needs the client
 *    to have written (ERROR_CANNOT_IMPERSONATE before). The pid's process
 *    token gives a user for per-user connection counting only; it is never
 *    used to grant anything;
 *  - once the request arrived (identity_complete, on the worker thread),
 *    ImpersonateNamedPipeClient gives the token the client chose to send:
 *    its user, groups and impersonation level decide everything after. The
 *    token is kept in the worker's scratch (at most one per worker).
 * identity_enter puts that token on the thread (SetThreadToken) and checks
 * that it took at Impersonation level for the right user, in BOTH modes:
 * without SeImpersonatePrivilege Windows silently downgrades a foreign token
 * to Identification, under which every open fails, so the check tells us.
 * An unprivileged daemon may still impersonate a token of its own user at
 * or below its own integrity, so it too opens as the client, never merely
 * as itself after comparing SIDs (an Identification-level copy of the
 * daemon user's token, which any pipe server that user writes to obtains,
 * would otherwise be served as that user).
 * identity_leave reverts and confirms that the thread has no token left;
 * if it cannot, the process ends. */
#include "identity.h"

#include <windows.h>

#include <sddl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idlist.h"
#include "log.h"

#define SID_BYTES_MAX SECURITY_MAX_SID_SIZE /* 68 */
#define NAME_WCHARS_MAX 512 /* DOMAIN\name: 15 + 1 + 256 fits easily */
#define SELF_INFO_MAX 65536 /* the daemon's TOKEN_GROUPS */

/* ---- the SID table ------------------------------------------------- */

/* Entries are written once, before count covers them (release), and never
 * change: readers take no lock. Interning takes the lock; a hash of the
 * SID bytes (open addressing, twice the entries) finds an existing entry. */
#define HASH_SLOTS (2 * IDENTITY_SIDS_MAX)

static struct {
  uv_mutex_t lock;
  atomic_uint count;
  BYTE sid[IDENTITY_SIDS_MAX][SID_BYTES_MAX];
  uint16_t slot[HASH_SLOTS]; /* index + 1; 0 = empty */
} table;

static uv_once_t table_once = UV_ONCE_INIT;
static int table_ok;

static void table_init(void) { table_ok = uv_mutex_init(&table.lock) == 0; }

static uint32_t sid_hash(const BYTE *p, DWORD n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (DWORD i = 0; i < n; i++)
    h = (h ^ p[i]) * 16777619u;
  return h;
}

/* The interned id of sid. UV_ENOMEM when the table is full: the caller
 * refuses the principal rather than share an id. */
static int sid_intern(PSID sid, unsigned *id) {
  DWORD n;
  uint32_t h;
  int rc = 0;

  *id = IDENTITY_ID_NONE;
  if (sid == NULL || !IsValidSid(sid))
    return UV_EINVAL;
  n = GetLengthSid(sid);
  if (n > SID_BYTES_MAX)
    return UV_EINVAL;
  uv_once(&table_once, table_init);
  if (!table_ok)
    return UV_ENOMEM;
  h = sid_hash(sid, n);
  uv_mutex_lock(&table.lock);
  for (unsigned probe = 0; probe < HASH_SLOTS; probe++) {
    unsigned s = (h + probe) % HASH_SLOTS;
    unsigned i = table.slot[s];
    if (i == 0) {
      unsigned c = atomic_load_explicit(&table.count, memory_order_relaxed);
      if (c == IDENTITY_SIDS_MAX) {
        rc = UV_ENOMEM;
        goto out;
      }
      memcpy(table.sid[c], sid, n);
      table.slot[s] = (uint16_t)(c + 1);
      atomic_store_explicit(&table.count, c + 1, memory_order_release);
      *id = IDENTITY_ID_BASE + c;
      goto out;
    }
    if (EqualSid((PSID)table.sid[i - 1], sid)) {
      *id = IDENTITY_ID_BASE + (i - 1);
      goto out;
    }
  }
  rc = UV_ENOMEM; /* unreachable: slots outnumber entries */
out:
  uv_mutex_unlock(&table.lock);
  if (rc == UV_ENOMEM)
    log_error("more than %u distinct Windows principals (SIDs) seen; "
              "refusing new ones until the daemon restarts",
              IDENTITY_SIDS_MAX);
  return rc;
}

/* The SID of interned id, or NULL if id names none. */
static PSID sid_of(unsigned id) {
  unsigned c = atomic_load_explicit(&table.count, memory_order_acquire);
  if (id < IDENTITY_ID_BASE || id - IDENTITY_ID_BASE >= c)
    return NULL;
  return (PSID)table.sid[id - IDENTITY_ID_BASE];
}

/* ---- token facts --------------------------------------------------- */

/* GetTokenInformation into buf (cap bytes). */
static int token_info(HANDLE t, TOKEN_INFORMATION_CLASS k, void *buf,
                      DWORD cap) {
  DWORD got = 0;
  if (!GetTokenInformation(t, k, buf, cap, &got))
    return uv_translate_sys_error(GetLastError());
  return 0;
}

/* The interned user of token t. The primary group is NOT interned: its
 * holder may set it to any group of the token (SetTokenInformation
 * TokenPrimaryGroup), e.g. its logon SID, new at every logon, so a few
 * thousand logons would fill the table for good (identity_log_ids). */
static int token_user(HANDLE t, unsigned *user) {
  union {
    TOKEN_USER u;
    BYTE b[sizeof(TOKEN_USER) + SID_BYTES_MAX];
  } buf;
  int rc = token_info(t, TokenUser, &buf, sizeof(buf));
  if (rc == 0)
    rc = sid_intern(buf.u.User.Sid, user);
  return rc;
}

/* A group counts for allowing only when enabled and not deny-only; the
 * mandatory integrity label is in TOKEN_GROUPS too and is no group. */
static int group_usable(DWORD attr) {
  return (attr & SE_GROUP_ENABLED) && !(attr & SE_GROUP_USE_FOR_DENY_ONLY) &&
         !(attr & SE_GROUP_INTEGRITY);
}

static int groups_have(const TOKEN_GROUPS *g, PSID sid) {
  for (DWORD i = 0; i < g->GroupCount; i++)
    if (group_usable(g->Groups[i].Attributes) &&
        EqualSid(g->Groups[i].Sid, sid))
      return 1;
  return 0;
}

/* ---- the daemon's own identity ------------------------------------- */

static int privileged;
static unsigned self_user = IDENTITY_ID_NONE;
static unsigned system_id = IDENTITY_ID_NONE; /* LocalSystem, S-1-5-18 */
static DWORD self_integrity;                  /* mandatory level RID */
static uint64_t self_info[SELF_INFO_MAX / 8]; /* the daemon's TOKEN_GROUPS */

/* The integrity RID of token t (SECURITY_MANDATORY_*_RID), 0 if unknown. */
static DWORD token_integrity(HANDLE t) {
  union {
    TOKEN_MANDATORY_LABEL l;
    BYTE b[sizeof(TOKEN_MANDATORY_LABEL) + SID_BYTES_MAX];
  } buf;
  PSID s;
  if (token_info(t, TokenIntegrityLevel, &buf, sizeof(buf)) != 0)
    return 0;
  s = buf.l.Label.Sid;
  if (!IsValidSid(s) || *GetSidSubAuthorityCount(s) == 0)
    return 0;
  return *GetSidSubAuthority(s, *GetSidSubAuthorityCount(s) - 1u);
}

/* Enable SeImpersonatePrivilege in the process token if it is there.
 * 1: held and now enabled (read back); 0: not held; < 0: error. */
static int enable_impersonate(HANDLE proc) {
  TOKEN_PRIVILEGES tp;
  const TOKEN_PRIVILEGES *all = (const TOKEN_PRIVILEGES *)self_info;
  LUID luid;
  int rc;

  if (!LookupPrivilegeValueW(NULL, L"SeImpersonatePrivilege", &luid))
    return uv_translate_sys_error(GetLastError());
  tp.PrivilegeCount = 1;
  tp.Privileges[0].Luid = luid;
  tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
  /* ERROR_NOT_ALL_ASSIGNED (a success of the call) means not held. */
  if (!AdjustTokenPrivileges(proc, FALSE, &tp, 0, NULL, NULL))
    return uv_translate_sys_error(GetLastError());
  if (GetLastError() == ERROR_NOT_ALL_ASSIGNED)
    return 0;
  /* Read it back (PrivilegeCheck wants an impersonation token). self_info
   * is borrowed here before it receives the daemon's groups. */
  if ((rc = token_info(proc, TokenPrivileges, self_info, sizeof(self_info))) !=
      0)
    return rc;
  for (DWORD i = 0; i < all->PrivilegeCount; i++)
    if (all->Privileges[i].Luid.LowPart == luid.LowPart &&
        all->Privileges[i].Luid.HighPart == luid.HighPart)
      return (all->Privileges[i].Attributes & SE_PRIVILEGE_ENABLED) ? 1 : 0;
  return 0;
}

/* Whether the calling thread has no impersonation token (is itself). */
static int thread_is_self(void) {
  HANDLE t = NULL;
  if (OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &t)) {
    CloseHandle(t);
    return 0;
  }
  return GetLastError() == ERROR_NO_TOKEN;
}

int identity_thread_init(void) {
  /* A worker starts as the daemon; make sure nothing (a library, a
   * previous use of the thread) left a token on it. */
  if (!RevertToSelf() || !thread_is_self())
    return UV_EPERM;
  return 0;
}

int identity_init(const char **why) {
  HANDLE proc = NULL;
  BYTE sysbuf[SID_BYTES_MAX];
  DWORD sysn = sizeof(sysbuf);
  int rc, held;

  privileged = 0;
  if (!OpenProcessToken(GetCurrentProcess(),
                        TOKEN_QUERY | TOKEN_ADJUST_PRIVILEGES, &proc)) {
    *why = "cannot open the daemon's own process token";
    return uv_translate_sys_error(GetLastError());
  }
  if (!CreateWellKnownSid(WinLocalSystemSid, NULL, sysbuf, &sysn)) {
    *why = "cannot build the LocalSystem SID";
    rc = uv_translate_sys_error(GetLastError());
    goto out;
  }
  rc = enable_impersonate(proc);
  if (rc < 0) {
    *why = "cannot enable SeImpersonatePrivilege";
    goto out;
  }
  held = rc;
  if ((rc = sid_intern(sysbuf, &system_id)) != 0 ||
      (rc = token_user(proc, &self_user)) != 0 ||
      (rc = token_info(proc, TokenGroups, self_info, sizeof(self_info))) != 0) {
    *why = "cannot read the daemon's own user and groups";
    goto out;
  }
  self_integrity = token_integrity(proc);
  /* The probe a worker relies on, in both modes (an unprivileged daemon
   * impersonates its own user's clients too): a thread can take a token and
   * give it back, and then has none. */
  if (!ImpersonateSelf(SecurityImpersonation) || thread_is_self()) {
    (void)RevertToSelf();
    *why = "impersonation does not take on this system";
    rc = UV_EPERM;
    goto out;
  }
  if (!RevertToSelf() || !thread_is_self()) {
    log_error("cannot return the main thread to the daemon's identity; "
              "aborting");
    log_flush();
    abort();
  }
  if (held) {
    privileged = 1;
    *why = "impersonating each client on the worker thread that opens its "
           "file (SeImpersonatePrivilege)";
    rc = 1;
  } else {
    *why = "unprivileged: no SeImpersonatePrivilege, so only clients whose "
           "token is the daemon's own user (unrestricted, same groups and "
           "integrity) are served, each impersonated";
    rc = 0;
  }
out:
  CloseHandle(proc);
  return rc;
}

int identity_privileged(void) { return privileged; }

unsigned identity_self_uid(void) { return self_user; }

/* ---- peers ---------------------------------------------------------- */

static atomic_uint_fast64_t peer_serial;

/* The user of process pid's primary token, interned; IDENTITY_ID_NONE if
 * it cannot be read (a protected or exited process, no right to query).
 * The pid may already name another process, and a remote client's pid
 * (remote_clients = yes) is another machine's, so it may name an unrelated
 * local process (GetNamedPipeClientComputerNameW would tell, but wine lacks
 * it): this is for counting only, never for access. */
static unsigned process_user(ULONG pid) {
  unsigned user = IDENTITY_ID_NONE;
  HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  HANDLE t = NULL;

  if (p == NULL)
    return user;
  if (OpenProcessToken(p, TOKEN_QUERY, &t)) {
    if (token_user(t, &user) != 0)
      user = IDENTITY_ID_NONE;
    CloseHandle(t);
  }
  CloseHandle(p);
  return user;
}

int identity_peer(uv_os_fd_t fd, struct identity *id) {
  ULONG pid = 0;

  memset(id, 0, sizeof(*id));
  id->user = IDENTITY_ID_NONE;
  id->key = IDENTITY_ID_NONE;
  if (!GetNamedPipeClientProcessId((HANDLE)fd, &pid))
    return uv_translate_sys_error(GetLastError());
  id->pid = (uv_pid_t)pid;
  id->user = process_user(pid);
  /* Clients whose process could not be read share one key: per-user limits
   * then count them together (availability only, never access). */
  id->key = id->user;
  id->serial = atomic_fetch_add(&peer_serial, 1) + 1;
  return 0;
}

static void scratch_drop(struct identity_scratch *s) {
  if (s->token != NULL)
    CloseHandle((HANDLE)s->token);
  s->token = NULL;
  s->serial = 0;
  s->groups = NULL;
  s->root = 0;
}

/* Take the client's token: impersonate, open the thread token as the
 * daemon, revert. Any failure to revert ends the process. */
static int take_client_token(HANDLE pipe, HANDLE *out) {
  int rc = 0;

  *out = NULL;
  if (!ImpersonateNamedPipeClient(pipe))
    return uv_translate_sys_error(GetLastError());
  /* OpenAsSelf: the access check on the token object is the daemon's, not
   * the client's (which may not be allowed to open its own token). */
  if (!OpenThreadToken(GetCurrentThread(),
                       TOKEN_QUERY | TOKEN_IMPERSONATE | TOKEN_DUPLICATE, TRUE,
                       out)) {
    DWORD e = GetLastError();
    *out = NULL;
    /* An Anonymous-level client has a token nobody may open. */
    rc = e == ERROR_CANT_OPEN_ANONYMOUS ? UV_EPERM : uv_translate_sys_error(e);
  }
  if (!RevertToSelf() || !thread_is_self()) {
    log_error("cannot stop impersonating a pipe client; aborting rather than "
              "serve with a client's identity");
    log_flush();
    abort();
  }
  return rc;
}

int identity_complete(struct identity *id, uv_os_fd_t fd,
                      struct identity_scratch *s) {
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  HANDLE t = NULL;
  unsigned user = IDENTITY_ID_NONE;
  int rc;

  id->complete = 0;
  id->scratch = s;
  /* The token a connection gave first serves its later requests, as the
   * groups a socket peer had at connect do on Linux. */
  if (id->serial != 0 && s->serial == id->serial && s->token != NULL) {
    id->complete = 1;
    return 0;
  }
  scratch_drop(s);
  rc = take_client_token((HANDLE)fd, &t);
  if (rc != 0)
    goto out;
  if ((rc = token_info(t, TokenImpersonationLevel, &level, sizeof(level))) != 0)
    goto out;
  /* Identification lets us read the token but not act as it, and both
   * modes act as it (identity_enter): a token a client only lets us look at
   * may be one it holds of somebody else (any pipe server gets its clients'
   * tokens at Identification level), so it proves nothing. */
  /* Wine gives every pipe server Impersonation level whatever the client
   * asked, so this refusal is right by construction under wine. */
  if (level < SecurityImpersonation) {
    rc = UV_EPERM;
    goto out;
  }
  if ((rc = token_user(t, &user)) != 0)
    goto out;
  /* ERROR_INSUFFICIENT_BUFFER: more groups than IDENTITY_TOKEN_INFO_MAX
   * holds; refused, since a group we did not read might be denied. */
  if ((rc = token_info(t, TokenGroups, s->info, sizeof(s->info))) != 0)
    goto out;
  s->groups = s->info;
  s->token = t;
  s->user = user;
  s->root = user == system_id;
  s->serial = id->serial;
  t = NULL;
  id->user = user;
  id->complete = 1;
out:
  if (t != NULL)
    CloseHandle(t);
  return rc;
}

/* Whether id is complete and its scratch still holds its token. */
static const struct identity_scratch *done(const struct identity *id) {
  const struct identity_scratch *s = id->scratch;
  if (!id->complete || s == NULL || s->serial != id->serial || s->token == NULL)
    return NULL;
  return s;
}

/* Root is LocalSystem (S-1-5-18), the account that holds every privilege
 * and owns the system, as uid 0 does on Linux. An elevated administrator is
 * not: it is a person's account, the open is still checked against its own
 * token, and counting it would refuse every elevated console by default
 * (and every client under wine, whose user is one). To refuse
 * administrators, name BUILTIN\Administrators in deny_groups. An incomplete
 * identity counts as root, so serve_root_clients = no refuses it (fail
 * closed). */
int identity_is_root(const struct identity *id) {
  const struct identity_scratch *s = done(id);
  return s == NULL || s->root;
}

int identity_user_in(const struct identity *id, const struct idlist *l) {
  if (l->all)
    return 1;
  return id->user != IDENTITY_ID_NONE && idlist_has(l, id->user);
}

/* Whether one of the token's groups is in l, compared by SID. Allowing
 * (for_deny = 0): enabled ones only (group_usable). Denying: every group
 * the token holds, enabled, disabled or deny-only, except the integrity
 * label (no group): a non-mandatory group can be disabled by its holder
 * (AdjustTokenGroups) to dodge a deny, and Windows grants nothing through
 * a deny-only one but it is still the client's. Wine marks every group
 * of its tokens mandatory, so no unit test there can disable one: the
 * disabled case is right by construction under wine (the test runs where a
 * token has a non-mandatory group). */
static int group_match(const struct identity *id, const struct idlist *l,
                       int for_deny) {
  const struct identity_scratch *s;
  const TOKEN_GROUPS *g;

  if (l->all)
    return 1;
  s = done(id);
  if (s == NULL)
    return 0;
  g = (const TOKEN_GROUPS *)s->groups;
  for (unsigned i = 0; i < l->n; i++) {
    PSID sid = sid_of(l->ids[i]);
    if (sid == NULL)
      continue;
    for (DWORD k = 0; k < g->GroupCount; k++) {
      DWORD a = g->Groups[k].Attributes;
      if ((for_deny ? !(a & SE_GROUP_INTEGRITY) : group_usable(a)) &&
          EqualSid(g->Groups[k].Sid, sid))
        return 1;
    }
  }
  return 0;
}

/* The token's enabled groups. A group held for deny only (a UAC-filtered
 * administrator's Administrators, a restricted token's disabled SIDs) or
 * disabled does not match: Windows never grants through it, so it must not
 * satisfy allow_groups. identity_group_denied matches those too. The
 * primary group is not
 * looked at separately: Windows requires it to be one of the token's
 * groups, so it is matched there, with that group's attributes. An
 * incomplete identity matches nothing, and policy then refuses it through
 * allow_groups unless that is "*". */
int identity_group_in(const struct identity *id, const struct idlist *l) {
  return group_match(id, l, 0);
}

int identity_group_denied(const struct identity *id, const struct idlist *l) {
  return group_match(id, l, 1);
}

/* Once complete, the interned id of the token's user: who the client is.
 * Before (at accept), the user of the client's process when it could be
 * opened (a service account usually cannot open other users' processes),
 * else IDENTITY_KEY_UNKNOWN (== IDENTITY_ID_NONE): conn.c then moves the
 * connection's count to the token's user at its first request. */
int identity_costly(const struct identity *id) {
  (void)id; /* impersonating costs the same whatever the token holds */
  return 0;
}

uint32_t identity_user_key(const struct identity *id) {
  return id->complete && id->user != IDENTITY_ID_NONE ? id->user : id->key;
}

/* uid: the interned id of the user (IDENTITY_ID_BASE + index), which
 * identity_user_name() maps back to user@DOMAIN. Not a RID: a RID (the
 * SID's last part) repeats across domains and machines (500 is every
 * machine's Administrator), so it would name no one. The number is stable
 * for the daemon's life only; the name is what an auditor reads. Before
 * completion uid is the process owner seen at accept.
 * gid: always IDENTITY_ID_NONE ((unsigned)-1, the log prints 4294967295).
 * A token's primary group is whatever its holder set (any group of the
 * token, e.g. its per-logon SID), so it says nothing about the client, and
 * interning it would let fresh logons fill the SID table for good; it
 * grants nothing on Windows either (the groups in the token do).
 * UV_ENOENT (uid (unsigned)-1) when no user is known. */
int identity_log_ids(const struct identity *id, unsigned *uid, unsigned *gid) {
  *uid = id->user;
  *gid = IDENTITY_ID_NONE;
  return id->user == IDENTITY_ID_NONE ? UV_ENOENT : 0;
}

/* ---- names ---------------------------------------------------------- */

static int utf8_to_wide(const char *s, WCHAR *w, int cap) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, cap);
  if (n == 0)
    return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? UV_ENAMETOOLONG
                                                       : UV_EINVAL;
  return 0;
}

static int wide_to_utf8(const WCHAR *w, char *s, size_t cap) {
  int n =
      WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, w, -1, s,
                          cap > INT32_MAX ? INT32_MAX : (int)cap, NULL, NULL);
  if (n == 0)
    return GetLastError() == ERROR_INSUFFICIENT_BUFFER ? UV_ENOBUFS : UV_EINVAL;
  return 0;
}

/* name -> interned SID. "S-1-..." is taken as a SID; anything else goes to
 * LookupAccountNameW ("user", "DOMAIN\user", "user@domain.example"), whose
 * answer must be of a kind in want (a user named in a group list is
 * refused, so a typo does not silently match nothing). */
static int name_to_id(const char *name, const SID_NAME_USE *want,
                      unsigned nwant, unsigned *id) {
  WCHAR w[NAME_WCHARS_MAX], dom[NAME_WCHARS_MAX];
  BYTE sid[SID_BYTES_MAX];
  DWORD sn = sizeof(sid), dn = NAME_WCHARS_MAX;
  SID_NAME_USE use;
  PSID text = NULL;
  int rc;

  *id = IDENTITY_ID_NONE;
  if (name[0] == '\0')
    return UV_ENOENT;
  if ((rc = utf8_to_wide(name, w, NAME_WCHARS_MAX)) != 0)
    return rc == UV_EINVAL ? UV_ENOENT : rc;
  if ((name[0] == 'S' || name[0] == 's') && name[1] == '-') {
    if (!ConvertStringSidToSidW(w, &text))
      return UV_ENOENT;
    rc = sid_intern(text, id);
    LocalFree(text);
    return rc;
  }
  if (!LookupAccountNameW(NULL, w, sid, &sn, dom, &dn, &use)) {
    DWORD e = GetLastError();
    WCHAR *at = wcsrchr(w, L'@');
    /* "name@DOMAIN", as the access log prints names, is a UPN only in a
     * domain: a local account (alice@HOST) is looked up as HOST\alice, so
     * a name copied from the log works in the config. */
    if (e != ERROR_NONE_MAPPED || at == NULL || at == w || at[1] == L'\0')
      return e == ERROR_NONE_MAPPED ? UV_ENOENT : uv_translate_sys_error(e);
    WCHAR alt[NAME_WCHARS_MAX];
    *at = L'\0';
    if (_snwprintf(alt, NAME_WCHARS_MAX, L"%ls\\%ls", at + 1, w) < 0)
      return UV_ENOENT;
    alt[NAME_WCHARS_MAX - 1] = L'\0';
    sn = sizeof(sid);
    dn = NAME_WCHARS_MAX;
    if (!LookupAccountNameW(NULL, alt, sid, &sn, dom, &dn, &use)) {
      e = GetLastError();
      return e == ERROR_NONE_MAPPED ? UV_ENOENT : uv_translate_sys_error(e);
    }
  }
  for (unsigned i = 0; i < nwant; i++)
    if (use == want[i])
      return sid_intern(sid, id);
  return UV_ENOENT;
}

/* Users, and the service principals that run programs: LocalSystem and
 * "NT SERVICE\x" virtual accounts look up as well-known groups. */
static const SID_NAME_USE user_kinds[] = {SidTypeUser, SidTypeWellKnownGroup,
                                          SidTypeComputer};
static const SID_NAME_USE group_kinds[] = {SidTypeGroup, SidTypeAlias,
                                           SidTypeWellKnownGroup};

int identity_user_id(const char *name, unsigned *uid) {
  return name_to_id(name, user_kinds, 3, uid);
}

int identity_group_id(const char *name, unsigned *gid) {
  return name_to_id(name, group_kinds, 3, gid);
}

/* "user@DOMAIN" (UTF-8; the access log's printable form: a backslash is
 * its escape character), or the SID's text when no account maps it (a
 * deleted user, an unreachable domain controller). */
int identity_user_name(unsigned uid, char *buf, size_t len) {
  BYTE sid[SID_BYTES_MAX];
  WCHAR name[NAME_WCHARS_MAX], dom[NAME_WCHARS_MAX];
  WCHAR full[2 * NAME_WCHARS_MAX + 2];
  DWORD nn = NAME_WCHARS_MAX, dn = NAME_WCHARS_MAX;
  SID_NAME_USE use;
  PSID p;
  int rc;

  if (len == 0)
    return UV_ENOBUFS;
  buf[0] = '\0';
  p = sid_of(uid);
  if (p == NULL)
    return UV_ENOENT;
  memcpy(sid, p, GetLengthSid(p));
  if (LookupAccountSidW(NULL, sid, name, &nn, dom, &dn, &use)) {
    if (dom[0] != L'\0')
      _snwprintf(full, sizeof(full) / sizeof(full[0]), L"%ls@%ls", name, dom);
    else
      _snwprintf(full, sizeof(full) / sizeof(full[0]), L"%ls", name);
    full[sizeof(full) / sizeof(full[0]) - 1] = L'\0';
    rc = wide_to_utf8(full, buf, len);
  } else {
    LPWSTR text = NULL;
    if (!ConvertSidToStringSidW(sid, &text))
      rc = uv_translate_sys_error(GetLastError());
    else
      rc = wide_to_utf8(text, buf, len);
    LocalFree(text);
  }
  if (rc != 0)
    buf[0] = '\0';
  return rc;
}

/* ---- acting as the client ------------------------------------------- */

/* Unprivileged: an extra check before impersonating (identity_enter), which
 * keeps the mode's promise of serving only clients that could read
 * everything the daemon can: its own user, a token not restricted, at least
 * the daemon's integrity level and every group the daemon has enabled. */
static int covers_self(const struct identity_scratch *s) {
  const TOKEN_GROUPS *mine = (const TOKEN_GROUPS *)self_info;

  if (s->user != self_user || IsTokenRestricted((HANDLE)s->token) ||
      token_integrity((HANDLE)s->token) < self_integrity)
    return 0;
  for (DWORD i = 0; i < mine->GroupCount; i++)
    if (group_usable(mine->Groups[i].Attributes) &&
        !groups_have((const TOKEN_GROUPS *)s->groups, mine->Groups[i].Sid))
      return 0;
  return 1;
}

/* The thread's token now is s's user at Impersonation level or above. */
static int took(const struct identity_scratch *s) {
  HANDLE t = NULL;
  SECURITY_IMPERSONATION_LEVEL level = SecurityAnonymous;
  union {
    TOKEN_USER u;
    BYTE b[sizeof(TOKEN_USER) + SID_BYTES_MAX];
  } buf;
  PSID want = sid_of(s->user);
  int ok = 0;

  if (want == NULL ||
      !OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &t))
    return 0;
  ok = token_info(t, TokenImpersonationLevel, &level, sizeof(level)) == 0 &&
       level >= SecurityImpersonation &&
       token_info(t, TokenUser, &buf, sizeof(buf)) == 0 &&
       EqualSid(buf.u.User.Sid, want);
  CloseHandle(t);
  return ok;
}

int identity_enter(const struct identity *id) {
  const struct identity_scratch *s = done(id);

  if (s == NULL)
    return UV_EPERM;
  if (!privileged && !covers_self(s))
    return UV_EPERM;
  /* Both modes: the open happens as the client. Unprivileged, Windows lets
   * a same-user token at or below the daemon's integrity take without
   * SeImpersonatePrivilege; anything else is downgraded, which took()
   * sees. */
  if (!SetThreadToken(NULL, (HANDLE)s->token) || !took(s)) {
    identity_leave();
    return UV_EPERM;
  }
  return 0;
}

void identity_leave(void) {
  if (!RevertToSelf() || !thread_is_self()) {
    log_error("cannot return a worker thread to the daemon's identity; "
              "aborting rather than serve with a client's identity");
    log_flush();
    abort();
  }
}

/* A token is never kept between requests here: impersonation ends at once
 * (the Linux record of held credentials has no Windows counterpart yet). */
void identity_release(void) { identity_leave(); }

void identity_settle(void) {}

int identity_holding(void) { return 0; }

void identity_thread_done(void) {}
