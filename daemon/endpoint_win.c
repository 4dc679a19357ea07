/* endpoint_win.c - endpoint.h on a Windows named pipe: the instances, their
 * security descriptor, the thread that waits for clients, and the hand-off
 * of each connected instance to the loop.
 *
 * Why not libuv's pipe server: uv_pipe_bind/uv_listen associate every
 * instance with the accepting loop's I/O completion port, and a handle
 * belongs to one port for life, so a worker's uv_pipe_open could only run
 * it in libuv's emulated (thread-per-wait) mode. Here instances are made
 * with CreateNamedPipeW (FILE_FLAG_OVERLAPPED) and ConnectNamedPipe is
 * waited on through an event of each instance, never a port: the handle
 * a worker gets is free to join the worker loop's port.
 *
 * The name is held from the first instance (FILE_FLAG_FIRST_PIPE_INSTANCE)
 * on: a further instance is made only while one of ours is held by the
 * waiter (a replacement before the instance it replaces is handed on), so
 * the name cannot have lapsed; when none is held (every attempt failed) the
 * next is made as a first instance again, and never joins a pipe of that
 * name that someone else may have created meanwhile.
 *
 * Divisions: the pipe name; the security descriptor (SDDL from the config,
 * checked against name squatting, plus the daemon's own SID so it may
 * create the later instances); instances and ConnectNamedPipe; the waiter
 * thread; the loop side (uv_async); open and close. */
#include "endpoint.h"

#include <windows.h>

#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "thread.h"

#define PIPE_PREFIX "\\\\.\\pipe\\" /* \\.\pipe\ */
#define PIPE_PREFIX_LEN 9
#define NO_DATA_RETRIES 4 /* ConnectNamedPipe: clients that came and went */
#define FAIL_LOG_MS 10000 /* instances failing: at most one line per */

/* Rights over a pipe that let their holder serve clients in our place
 * (FILE_CREATE_PIPE_INSTANCE is FILE_APPEND_DATA, which GENERIC_WRITE
 * includes) or give itself that right. */
#define SQUAT_RIGHTS                                                           \
  (FILE_CREATE_PIPE_INSTANCE | GENERIC_WRITE | GENERIC_ALL | WRITE_DAC |       \
   WRITE_OWNER)

/* What the daemon's own ACE grants: creating instances and what
 * CreateNamedPipeW opens each with (PIPE_ACCESS_DUPLEX: read and write),
 * nothing more: no WRITE_DAC, WRITE_OWNER or DELETE (0x12019f). */
#define SELF_RIGHTS                                                            \
  (FILE_CREATE_PIPE_INSTANCE | FILE_GENERIC_READ | FILE_GENERIC_WRITE)

enum slot_state {
  SLOT_EMPTY,   /* no instance, or one to connect again */
  SLOT_PENDING, /* ConnectNamedPipe in flight: wait on event */
  SLOT_READY    /* a client connected; to be handed on */
};

struct slot {
  HANDLE pipe;   /* INVALID_HANDLE_VALUE when none */
  OVERLAPPED ov; /* ConnectNamedPipe's; hEvent = event */
  HANDLE event;  /* manual reset, this slot's own */
  enum slot_state state;
};

struct endpoint_win {
  struct endpoint *ep;
  wchar_t name[PIPE_PREFIX_LEN + ENDPOINT_NAME_MAX + 1]; /* UTF-16 path */
  PSECURITY_DESCRIPTOR parsed; /* from the SDDL (LocalAlloc'ed) */
  PACL dacl;                   /* its DACL plus our own account (malloc) */
  SECURITY_DESCRIPTOR sd;      /* absolute: parsed's parts, dacl */
  SECURITY_ATTRIBUTES sa;      /* -> sd, not inheritable */
  DWORD pipe_mode;
  struct slot slot[ENDPOINT_PENDING]; /* the waiter thread's once started */
  HANDLE stop;                        /* manual reset: the waiter thread ends */
  HANDLE room; /* auto reset: the loop took from a full queue */
  uv_thread_t thread;
  int thread_started;
  uint64_t last_fail_log;  /* GetTickCount64 of the last failure line */
  PSID user;               /* the daemon's user (malloc): w->sd's owner
                              when the SDDL names none */
  uint64_t last_lapse_log; /* the same, for a name not ours (next_instance) */
  uv_async_t async;        /* wakes the loop: handles queued */
  int async_open;
  uv_mutex_t lock; /* guards the queue */
  HANDLE queue[ENDPOINT_QUEUE_MAX];
  unsigned qhead, qlen;
};

/* The text of a Win32 error, for messages: "Access is denied (Win32 error
 * 5)". */
static const char *win_text(DWORD e, char *buf, size_t len) {
  DWORD n = FormatMessageA(
      FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
      MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), buf, (DWORD)len, NULL);

  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                   buf[n - 1] == ' ' || buf[n - 1] == '.'))
    n--;
  snprintf(buf + n, len - n, " (Win32 error %lu)", (unsigned long)e);
  return buf;
}

/* ---- the pipe name ---------------------------------------------------- */

/* path must be \\.\pipe\NAME: NAME 1..ENDPOINT_NAME_MAX UTF-16 units, no
 * backslash (the namespace is flat: a further one is part of no name a
 * client can be told). Its UTF-16 form into w->name. 0 or UV_EINVAL. */
static int check_name(struct endpoint_win *w, const char *path, char *err,
                      size_t errlen) {
  size_t len = strlen(path);
  int n;

  if (len <= PIPE_PREFIX_LEN || _strnicmp(path, PIPE_PREFIX, PIPE_PREFIX_LEN))
    goto bad;
  if (len > ENDPOINT_PATH_MAX || strchr(path + PIPE_PREFIX_LEN, '\\'))
    goto bad;
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w->name,
                          (int)(sizeof(w->name) / sizeof(w->name[0])));
  if (n <= 0 || n - 1 - PIPE_PREFIX_LEN > ENDPOINT_NAME_MAX)
    goto bad;
  return 0;
bad:
  snprintf(err, errlen,
           "pipe %.300s: not a pipe name (\\\\.\\pipe\\ and a name of 1 to "
           "%d characters, no backslash, at most %d bytes of UTF-8)",
           path, ENDPOINT_NAME_MAX, ENDPOINT_PATH_MAX);
  return UV_EINVAL;
}

/* ---- the security descriptor ------------------------------------------ */

static PSID sid_dup(PSID sid) {
  DWORD len = GetLengthSid(sid);
  PSID c = malloc(len);

  if (c != NULL && !CopySid(len, c, sid)) {
    free(c);
    c = NULL;
  }
  return c;
}

/* A service SID, S-1-5-80-a-b-c-d-e (the SHA-1 of one service's name);
 * not S-1-5-80-0, NT SERVICE\ALL SERVICES, which every service holds.
 * (fsguard_win.c's test, copied: each file keeps its own seam.) */
static int service_sid(PSID sid) {
  static const SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};

  return memcmp(GetSidIdentifierAuthority(sid), &nt, sizeof nt) == 0 &&
         *GetSidSubAuthorityCount(sid) == 6 &&
         *GetSidSubAuthority(sid, 0) == SECURITY_SERVICE_ID_BASE_RID;
}

/* The SID the pipe's DACL names the daemon by (malloc), from its token's
 * user and groups: the one enabled service SID among the groups when there
 * is exactly one (the SCM adds NT SERVICE\pipefiled when the service's SID
 * type is set; several: a shared svchost, none of them ours alone), else
 * the user. Why not always the user: under LocalService (S-1-5-19) that SID
 * is every LocalService service's, and whoever may create instances of the
 * pipe can serve its clients and impersonate them. Under the virtual
 * account NT SERVICE\pipefiled the user is the service SID itself. */
static PSID pick_sid(const TOKEN_GROUPS *g, PSID user) {
  PSID one = NULL;
  DWORD found = 0;

  for (DWORD i = 0; g != NULL && i < g->GroupCount; i++) {
    const SID_AND_ATTRIBUTES *a = &g->Groups[i];
    if ((a->Attributes & SE_GROUP_ENABLED) &&
        !(a->Attributes & SE_GROUP_USE_FOR_DENY_ONLY) && service_sid(a->Sid)) {
      one = a->Sid;
      found++;
    }
  }
  return sid_dup(found == 1 ? one : user);
}

/* The daemon's own SID (malloc'ed, see pick_sid), or NULL; and its user
 * SID into *user (malloc'ed) when user is not NULL. */
static PSID own_sid(PSID *user) {
  HANDLE tok = NULL;
  union {
    TOKEN_USER tu;
    char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  union {
    TOKEN_GROUPS tg;
    char bytes[16384];
  } *g = NULL;
  DWORD got = 0;
  PSID sid = NULL;

  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
    return NULL;
  g = malloc(sizeof(*g));
  /* Groups that cannot be read: no service SID is known, and the user is
   * what was trusted before services had SIDs. Never fail open: the user
   * is the narrowest SID the daemon surely runs as. */
  if (g != NULL &&
      !GetTokenInformation(tok, TokenGroups, g, sizeof(*g), &got)) {
    free(g);
    g = NULL;
  }
  if (GetTokenInformation(tok, TokenUser, &u, sizeof(u), &got)) {
    sid = pick_sid(g ? &g->tg : NULL, u.tu.User.Sid);
    if (user != NULL && sid != NULL &&
        (*user = sid_dup(u.tu.User.Sid)) == NULL) {
      free(sid);
      sid = NULL;
    }
  }
  free(g);
  CloseHandle(tok);
  return sid;
}

/* Whether sid may hold SQUAT_RIGHTS: the system, the administrators, and
 * the daemon's own SID (which must: it creates the instances). */
static int trusted_sid(PSID sid, PSID self) {
  return IsWellKnownSid(sid, WinLocalSystemSid) ||
         IsWellKnownSid(sid, WinBuiltinAdministratorsSid) ||
         (self != NULL && EqualSid(sid, self));
}

/* Refuse (strict) or warn about a DACL that lets others than trusted_sid
 * create instances of the pipe: whoever can is a second server that
 * clients cannot tell from ours. 0 or UV_EINVAL with the reason in err. */
static int check_squat(const char *sddl, PACL dacl, PSID self, int strict,
                       char *err, size_t errlen) {
  for (DWORD i = 0; i < dacl->AceCount; i++) {
    ACE_HEADER *h;
    ACCESS_MASK mask;
    PSID sid;
    char *ssid = NULL;

    /* An ACE that cannot be read: the DACL cannot be judged. */
    if (!GetAce(dacl, i, (void **)&h)) {
      snprintf(err, errlen, "pipe_sddl \"%.200s\": cannot read ACE %lu", sddl,
               (unsigned long)i);
      return UV_EINVAL;
    }
    if (h->AceFlags & INHERIT_ONLY_ACE)
      continue; /* for children: a pipe has none */
    if (h->AceType == ACCESS_ALLOWED_ACE_TYPE) {
      mask = ((ACCESS_ALLOWED_ACE *)h)->Mask;
      sid = &((ACCESS_ALLOWED_ACE *)h)->SidStart;
    } else if (h->AceType == ACCESS_ALLOWED_CALLBACK_ACE_TYPE) {
      mask = ((ACCESS_ALLOWED_CALLBACK_ACE *)h)->Mask;
      sid = &((ACCESS_ALLOWED_CALLBACK_ACE *)h)->SidStart;
    } else if (h->AceType == ACCESS_DENIED_ACE_TYPE ||
               h->AceType == ACCESS_DENIED_CALLBACK_ACE_TYPE ||
               h->AceType == ACCESS_DENIED_OBJECT_ACE_TYPE ||
               h->AceType == ACCESS_DENIED_CALLBACK_OBJECT_ACE_TYPE) {
      continue; /* denies only narrow */
    } else {
      /* Any other kind (object allows, OA/ZA, types 5 and 11; compound):
       * not read here, so not trusted: fail closed, as fsguard_win.c. */
      snprintf(err, errlen,
               "pipe_sddl \"%.200s\": ACE %lu is of a kind not checked (type "
               "%u; use A or D ACEs)%s",
               sddl, (unsigned long)i, (unsigned)h->AceType,
               strict ? "; refusing" : " (strict_modes = no: serving anyway)");
      if (strict)
        return UV_EINVAL;
      log_warn("%s", err);
      err[0] = '\0';
      continue;
    }
    if (!(mask & SQUAT_RIGHTS) || trusted_sid(sid, self))
      continue;
    ConvertSidToStringSidA(sid, &ssid);
    snprintf(err, errlen,
             "pipe_sddl \"%.200s\": grants %s the right to create instances "
             "of the pipe (access mask 0x%lx includes GENERIC_WRITE, "
             "GENERIC_ALL, FILE_CREATE_PIPE_INSTANCE, WRITE_DAC or "
             "WRITE_OWNER): it could serve clients in pipefiled's place%s",
             sddl, ssid ? ssid : "a SID", (unsigned long)mask,
             strict ? "; refusing (grant 0x12019b for read/write data)"
                    : " (strict_modes = no: serving anyway)");
    LocalFree(ssid);
    if (strict)
      return UV_EINVAL;
    log_warn("%s", err);
    err[0] = '\0';
  }
  return 0;
}

/* w->sa from sddl: its owner, group, SACL and DACL, with two ACEs appended
 * to the DACL: SELF_RIGHTS for the daemon's own SID (own_sid). Creating an
 * instance of an existing pipe is checked against its DACL
 * (FILE_CREATE_PIPE_INSTANCE), and the default SDDL grants that to SYSTEM
 * and the administrators only: a service running as a virtual or
 * LocalService account could create the first instance and no other.
 * And OWNER RIGHTS (S-1-3-4) read-only: the owner is by default the
 * daemon's user, which under LocalService other services share, and an
 * owner is otherwise always allowed WRITE_DAC, with which it could grant
 * itself the right to create instances. Returns 0 or UV_E* with the reason
 * in err. */
static int make_sd(struct endpoint_win *w, const char *sddl, int strict,
                   char *err, size_t errlen) {
  BOOL present = FALSE, defaulted = FALSE;
  PACL dacl = NULL, sacl = NULL;
  PSID self = NULL, user = NULL, owner = NULL, group = NULL;
  BYTE owner_rights[SECURITY_MAX_SID_SIZE];
  SECURITY_DESCRIPTOR_CONTROL ctl = 0;
  ACL_SIZE_INFORMATION info;
  DWORD rev, size;
  wchar_t *wsddl = NULL;
  char why[256];
  int n, rc = UV_EINVAL;

  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, sddl, -1, NULL, 0);
  if (n <= 0 || (wsddl = malloc((size_t)n * sizeof(wchar_t))) == NULL ||
      MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, sddl, -1, wsddl, n) !=
          n) {
    snprintf(err, errlen, "pipe_sddl \"%.200s\": not valid UTF-8", sddl);
    goto out;
  }
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          wsddl, SDDL_REVISION_1, &w->parsed, NULL)) {
    snprintf(err, errlen,
             "pipe_sddl \"%.200s\": not a valid security descriptor: %s", sddl,
             win_text(GetLastError(), why, sizeof(why)));
    goto out;
  }
  if (!GetSecurityDescriptorDacl(w->parsed, &present, &dacl, &defaulted) ||
      !present || dacl == NULL) {
    /* No DACL: the pipe's would come from elsewhere (the token's default);
     * a NULL DACL: everyone may do everything, create instances too. */
    snprintf(err, errlen,
             "pipe_sddl \"%.200s\": %s; refusing (it must say who may "
             "connect, e.g. D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU))",
             sddl,
             !present ? "has no DACL (D:...)"
                      : "has a NULL DACL, which grants everyone everything");
    goto out;
  }
  self = own_sid(&user);
  if (self == NULL) {
    rc = uv_translate_sys_error(GetLastError());
    snprintf(err, errlen, "pipe: cannot read the daemon's own account: %s",
             win_text(GetLastError(), why, sizeof(why)));
    goto out;
  }
  rc = check_squat(sddl, dacl, self, strict, err, errlen);
  if (rc != 0)
    goto out;
  rc = UV_ENOMEM;
  if (!GetAclInformation(dacl, &info, sizeof(info), AclSizeInformation))
    goto sys;
  {
    DWORD n = sizeof(owner_rights);
    if (!CreateWellKnownSid(WinCreatorOwnerRightsSid, NULL, owner_rights, &n))
      goto sys;
  }
  size = info.AclBytesInUse + 2 * sizeof(ACCESS_ALLOWED_ACE) +
         GetLengthSid(self) + GetLengthSid(owner_rights);
  w->dacl = malloc(size);
  if (w->dacl == NULL) {
    snprintf(err, errlen, "pipe: out of memory");
    goto out;
  }
  if (!InitializeAcl(w->dacl, size, ACL_REVISION))
    goto sys;
  for (DWORD i = 0; i < info.AceCount; i++) {
    ACE_HEADER *h;
    if (!GetAce(dacl, i, (void **)&h) ||
        !AddAce(w->dacl, ACL_REVISION_DS, MAXDWORD, h, h->AceSize))
      goto sys;
  }
  /* Appended: an explicit deny above it still wins, as the SDDL says. */
  if (!AddAccessAllowedAce(w->dacl, ACL_REVISION, SELF_RIGHTS, self) ||
      !AddAccessAllowedAce(w->dacl, ACL_REVISION, READ_CONTROL, owner_rights))
    goto sys;
  if (!InitializeSecurityDescriptor(&w->sd, SECURITY_DESCRIPTOR_REVISION) ||
      !SetSecurityDescriptorDacl(&w->sd, TRUE, w->dacl, FALSE) ||
      !GetSecurityDescriptorControl(w->parsed, &ctl, &rev) ||
      !SetSecurityDescriptorControl(&w->sd, SE_DACL_PROTECTED,
                                    ctl & SE_DACL_PROTECTED))
    goto sys;
  /* The owner: the SDDL's (O:...), else the daemon's user, said rather
   * than left to the token's default owner, which is Administrators for
   * some accounts and, under wine, the user's primary group: clients
   * check the pipe's owner (transport_win.c), and a user may always own
   * with its own SID. */
  if (!GetSecurityDescriptorOwner(w->parsed, &owner, &defaulted) ||
      owner == NULL)
    owner = user;
  if (!SetSecurityDescriptorOwner(&w->sd, owner, FALSE))
    goto sys;
  if (GetSecurityDescriptorGroup(w->parsed, &group, &defaulted) &&
      group != NULL && !SetSecurityDescriptorGroup(&w->sd, group, FALSE))
    goto sys;
  /* The SACL carries a mandatory label (S:(ML;;NW;;;LW) lets low-integrity
   * clients in): kept as written. */
  present = FALSE;
  if (GetSecurityDescriptorSacl(w->parsed, &present, &sacl, &defaulted) &&
      present && !SetSecurityDescriptorSacl(&w->sd, TRUE, sacl, FALSE))
    goto sys;
  w->sa.nLength = sizeof(w->sa);
  w->sa.lpSecurityDescriptor = &w->sd;
  w->sa.bInheritHandle = FALSE;
  rc = 0;
  goto out;
sys:
  rc = uv_translate_sys_error(GetLastError());
  snprintf(err, errlen, "pipe_sddl \"%.200s\": cannot build it: %s", sddl,
           win_text(GetLastError(), why, sizeof(why)));
out:
  free(wsddl);
  free(self);
  /* w->sd points at it when it is the owner: kept until release(). */
  if (rc == 0 && owner == user)
    w->user = user;
  else
    free(user);
  return rc;
}

/* ---- instances -------------------------------------------------------- */

static HANDLE make_instance(struct endpoint_win *w, int first) {
  return CreateNamedPipeW(w->name,
                          PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                              (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                          w->pipe_mode, PIPE_UNLIMITED_INSTANCES,
                          ENDPOINT_PIPE_BUFFER, ENDPOINT_PIPE_BUFFER, 0,
                          &w->sa);
}

/* Whether the waiter holds an instance of our pipe (an unconnected one or
 * one whose client is still to be handed on): a pipe exists while any of
 * its instances is open, so the name is then surely ours, and an instance
 * made without FILE_FLAG_FIRST_PIPE_INSTANCE joins our pipe. */
static int holding(const struct endpoint_win *w) {
  for (int i = 0; i < ENDPOINT_PENDING; i++)
    if (w->slot[i].pipe != INVALID_HANDLE_VALUE)
      return 1;
  return 0;
}

/* A further instance. While the waiter holds one of ours (holding) it joins
 * our pipe. When it holds none (every instance failed to be made, or was
 * handed on and its replacement failed) the name may have lapsed and been
 * taken: the instance is then made only as a first one. Refused, the pipe
 * exists: still ours, kept alive by connections the loop has not closed,
 * or someone else's. Which cannot be told for sure (its owner and DACL can
 * be copied by a principal with the same account), so it is never joined:
 * the caller retries, and once our connections have closed the name is
 * ours again unless another process holds it, which is logged. */
static HANDLE next_instance(struct endpoint_win *w) {
  HANDLE h;
  DWORD e;
  uint64_t now;

  if (holding(w))
    return make_instance(w, 0);
  h = make_instance(w, 1);
  if (h != INVALID_HANDLE_VALUE) {
    log_warn("pipe %s: all its instances had closed; made it again",
             w->ep->path);
    return h;
  }
  e = GetLastError();
  if (e != ERROR_ACCESS_DENIED && e != ERROR_PIPE_BUSY)
    return INVALID_HANDLE_VALUE;
  now = GetTickCount64();
  if (w->last_lapse_log == 0 || now - w->last_lapse_log >= FAIL_LOG_MS) {
    w->last_lapse_log = now;
    log_error("pipe %s: pipefiled has no instance of it waiting, and the "
              "pipe exists: either connections still open keep it, or "
              "another process created a pipe of that name (clients may be "
              "reaching that process); not joining it, retrying every %d "
              "ms until the name is free",
              w->ep->path, ENDPOINT_RETRY_MS);
  }
  SetLastError(e);
  return INVALID_HANDLE_VALUE;
}

static void drop_instance(struct slot *s) {
  if (s->pipe != INVALID_HANDLE_VALUE)
    CloseHandle(s->pipe);
  s->pipe = INVALID_HANDLE_VALUE;
  s->state = SLOT_EMPTY;
}

/* Make s wait for a client: an instance (a new one if it has none), then
 * ConnectNamedPipe on its event. A client may already be there (READY).
 * Returns 0 or the Win32 error (s is then EMPTY, without an instance). */
static DWORD arm(struct endpoint_win *w, struct slot *s) {
  DWORD e;

  if (s->pipe == INVALID_HANDLE_VALUE) {
    s->pipe = next_instance(w);
    if (s->pipe == INVALID_HANDLE_VALUE)
      return GetLastError();
  }
  for (int tries = 0; tries < NO_DATA_RETRIES; tries++) {
    memset(&s->ov, 0, sizeof(s->ov));
    s->ov.hEvent = s->event;
    ResetEvent(s->event);
    if (ConnectNamedPipe(s->pipe, &s->ov)) {
      s->state = SLOT_READY; /* overlapped: not expected, but connected */
      return 0;
    }
    e = GetLastError();
    if (e == ERROR_IO_PENDING) {
      s->state = SLOT_PENDING;
      return 0;
    }
    if (e == ERROR_PIPE_CONNECTED) { /* came before we asked */
      s->state = SLOT_READY;
      return 0;
    }
    if (e != ERROR_NO_DATA)
      break;
    /* A client connected and left before we asked: free the instance for
     * the next one. */
    DisconnectNamedPipe(s->pipe);
  }
  drop_instance(s);
  return e;
}

/* s's ConnectNamedPipe completed (its event is set): READY, or the client
 * left before it was taken, and s is armed again on the same instance (the
 * name stays ours). */
static void connected(struct slot *s) {
  DWORD n;

  if (GetOverlappedResult(s->pipe, &s->ov, &n, FALSE)) {
    s->state = SLOT_READY;
    return;
  }
  if (GetLastError() == ERROR_IO_INCOMPLETE)
    return; /* not yet after all */
  DisconnectNamedPipe(s->pipe);
  s->state = SLOT_EMPTY; /* arm() reuses the instance */
}

/* ---- the waiter thread ------------------------------------------------ */

/* Free places in the queue. */
static unsigned room_now(struct endpoint_win *w) {
  unsigned r;

  uv_mutex_lock(&w->lock);
  r = ENDPOINT_QUEUE_MAX - w->qlen;
  uv_mutex_unlock(&w->lock);
  return r;
}

static void push(struct endpoint_win *w, HANDLE h) {
  uv_mutex_lock(&w->lock);
  w->queue[(w->qhead + w->qlen) % ENDPOINT_QUEUE_MAX] = h;
  w->qlen++;
  uv_mutex_unlock(&w->lock);
  uv_async_send(&w->async);
}

static void fail_log(struct endpoint_win *w, DWORD e) {
  uint64_t now = GetTickCount64();
  char why[256];

  if (now - w->last_fail_log < FAIL_LOG_MS && w->last_fail_log != 0)
    return;
  w->last_fail_log = now;
  log_error("pipe %s: cannot wait for the next client: %s; retrying "
            "every %d ms (clients meanwhile may find the pipe busy)",
            w->ep->path, win_text(e, why, sizeof(why)), ENDPOINT_RETRY_MS);
}

/* Hands connected instances to the loop, replacing each at once, and waits
 * for the next: on the instances' events, the stop event and, when the
 * queue is full, the loop making room. */
static void waiter(void *arg) {
  struct endpoint_win *w = arg;
  uint64_t retry_at = 0;

  for (;;) {
    HANDLE hs[2 + ENDPOINT_PENDING];
    DWORD n = 0, timeout = INFINITE, r, e;
    unsigned room = room_now(w), ready = 0, empty = 0;

    /* Hand on what connected, while there is room; arm empty slots (a
     * fresh instance, or one whose client left) unless pausing. Arming may
     * find a client already there: go round again. */
    for (int again = 1; again;) {
      again = 0;
      for (int i = 0; i < ENDPOINT_PENDING; i++) {
        struct slot *s = &w->slot[i];
        if (s->state == SLOT_READY && room > 0) {
          /* The replacement first, while this instance still holds the
           * name (next_instance): handed on, the loop may close it at
           * once. Not made: arm() tries again as for any empty slot. */
          HANDLE next = next_instance(w);
          push(w, s->pipe);
          room--;
          s->pipe = next;
          s->state = SLOT_EMPTY;
        }
        if (s->state == SLOT_EMPTY && GetTickCount64() >= retry_at) {
          e = arm(w, s);
          if (e != 0) {
            fail_log(w, e);
            retry_at = GetTickCount64() + ENDPOINT_RETRY_MS;
          }
          again |= s->state == SLOT_READY && room > 0;
        }
      }
    }
    hs[n++] = w->stop;
    for (int i = 0; i < ENDPOINT_PENDING; i++) {
      ready += w->slot[i].state == SLOT_READY;
      empty += w->slot[i].state == SLOT_EMPTY;
      if (w->slot[i].state == SLOT_PENDING)
        hs[n++] = w->slot[i].event;
    }
    if (ready > 0)
      hs[n++] = w->room;
    if (empty > 0) {
      uint64_t now = GetTickCount64();
      timeout = retry_at > now ? (DWORD)(retry_at - now) : 0;
    }
    r = WaitForMultipleObjects(n, hs, FALSE, timeout);
    if (r == WAIT_OBJECT_0)
      break;
    if (r == WAIT_FAILED) {
      /* Cannot happen with our own live handles; never spin on it. */
      fail_log(w, GetLastError());
      if (WaitForSingleObject(w->stop, ENDPOINT_RETRY_MS) == WAIT_OBJECT_0)
        break;
    }
    /* Whichever woke us, look at every pending instance: the lowest index
     * WaitForMultipleObjects reports would otherwise go first always. */
    for (int i = 0; i < ENDPOINT_PENDING; i++)
      if (w->slot[i].state == SLOT_PENDING &&
          HasOverlappedIoCompleted(&w->slot[i].ov))
        connected(&w->slot[i]);
  }
}

/* ---- the loop side ---------------------------------------------------- */

static void on_async(uv_async_t *a) {
  struct endpoint_win *w = a->data;
  HANDLE batch[ENDPOINT_ACCEPT_BATCH];
  unsigned n, more, was_full;

  uv_mutex_lock(&w->lock);
  was_full = w->qlen == ENDPOINT_QUEUE_MAX;
  n = w->qlen < ENDPOINT_ACCEPT_BATCH ? w->qlen : ENDPOINT_ACCEPT_BATCH;
  for (unsigned i = 0; i < n; i++)
    batch[i] = w->queue[(w->qhead + i) % ENDPOINT_QUEUE_MAX];
  w->qhead = (w->qhead + n) % ENDPOINT_QUEUE_MAX;
  w->qlen -= n;
  more = w->qlen > 0;
  uv_mutex_unlock(&w->lock);

  if (was_full && n > 0)
    SetEvent(w->room);
  if (more)
    uv_async_send(a); /* the rest next turn: the loop's others go first */
  for (unsigned i = 0; i < n; i++) {
    if (w->ep->win == w)
      w->ep->accept_cb(w->ep, (uv_os_fd_t)batch[i]);
    else
      CloseHandle(batch[i]); /* closed by a callback before */
  }
}

/* ---- open, close ------------------------------------------------------ */

static void free_win(struct endpoint_win *w) {
  uv_mutex_destroy(&w->lock);
  free(w);
}

static void on_async_closed(uv_handle_t *h) { free_win(h->data); }

/* Release everything of w but its memory, the lock and the async handle. */
static void release(struct endpoint_win *w) {
  DWORD n;

  if (w->thread_started) {
    SetEvent(w->stop);
    uv_thread_join(&w->thread);
    w->thread_started = 0;
  }
  for (int i = 0; i < ENDPOINT_PENDING; i++) {
    struct slot *s = &w->slot[i];
    if (s->state == SLOT_PENDING) {
      /* The kernel writes s->ov when the connect ends: let it end before
       * the memory goes. */
      CancelIoEx(s->pipe, &s->ov);
      GetOverlappedResult(s->pipe, &s->ov, &n, TRUE);
    }
    drop_instance(s);
    if (s->event != NULL)
      CloseHandle(s->event);
    s->event = NULL;
  }
  uv_mutex_lock(&w->lock);
  while (w->qlen > 0) { /* connected, never handed on */
    CloseHandle(w->queue[w->qhead]);
    w->qhead = (w->qhead + 1) % ENDPOINT_QUEUE_MAX;
    w->qlen--;
  }
  uv_mutex_unlock(&w->lock);
  if (w->stop != NULL)
    CloseHandle(w->stop);
  if (w->room != NULL)
    CloseHandle(w->room);
  w->stop = w->room = NULL;
  LocalFree(w->parsed);
  w->parsed = NULL;
  free(w->dacl);
  w->dacl = NULL;
  free(w->user);
  w->user = NULL;
}

int endpoint_listen(struct endpoint *ep, const char *path,
                    const struct endpoint_opts *o, char *err, size_t errlen) {
  struct endpoint_win *w;
  char why[256];
  DWORD e;
  int rc, events_ok;

  memset(ep, 0, sizeof(*ep));
  if (errlen > 0)
    err[0] = '\0';
  w = calloc(1, sizeof(*w));
  if (w == NULL) {
    snprintf(err, errlen, "pipe %.300s: out of memory", path);
    return UV_ENOMEM;
  }
  w->ep = ep;
  uv_mutex_init(&w->lock);
  for (int i = 0; i < ENDPOINT_PENDING; i++)
    w->slot[i].pipe = INVALID_HANDLE_VALUE;
  rc = check_name(w, path, err, errlen);
  if (rc != 0)
    goto fail;
  rc = make_sd(w, o->sddl ? o->sddl : "", o->strict, err, errlen);
  if (rc != 0)
    goto fail;
  w->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
  w->room = CreateEventW(NULL, FALSE, FALSE, NULL);
  events_ok = w->stop != NULL && w->room != NULL;
  for (int i = 0; i < ENDPOINT_PENDING; i++) {
    w->slot[i].event = CreateEventW(NULL, TRUE, FALSE, NULL);
    events_ok &= w->slot[i].event != NULL;
  }
  if (!events_ok) {
    rc = uv_translate_sys_error(GetLastError());
    snprintf(err, errlen, "pipe %.300s: cannot create events: %s", path,
             win_text(GetLastError(), why, sizeof(why)));
    goto fail;
  }
  w->pipe_mode = PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                 (o->remote ? 0 : PIPE_REJECT_REMOTE_CLIENTS);
  /* The first instance proves the name is ours: with
   * FILE_FLAG_FIRST_PIPE_INSTANCE it fails if any instance exists, so a
   * second daemon, or a squatter who got there first, is refused loudly
   * instead of sharing clients with us. */
  w->slot[0].pipe = make_instance(w, 1);
  if (w->slot[0].pipe == INVALID_HANDLE_VALUE) {
    e = GetLastError();
    if (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) {
      rc = UV_EADDRINUSE;
      snprintf(err, errlen, "another process already serves %.300s", path);
    } else {
      rc = uv_translate_sys_error(e);
      snprintf(err, errlen, "pipe %.300s: cannot create it: %s", path,
               win_text(e, why, sizeof(why)));
    }
    goto fail;
  }
  for (int i = 1; i < ENDPOINT_PENDING; i++) {
    w->slot[i].pipe = make_instance(w, 0);
    if (w->slot[i].pipe == INVALID_HANDLE_VALUE) {
      e = GetLastError();
      rc = uv_translate_sys_error(e);
      snprintf(err, errlen, "pipe %.300s: cannot create instance %d: %s%s",
               path, i + 1, win_text(e, why, sizeof(why)),
               e == ERROR_ACCESS_DENIED
                   ? " (does pipe_sddl deny the daemon's account?)"
                   : "");
      goto fail;
    }
  }
  strcpy(ep->path, path);
  ep->win = w;
  return 0;
fail:
  release(w);
  free_win(w);
  return rc;
}

int endpoint_adopt(struct endpoint *ep, const char *name, char *err,
                   size_t errlen) {
  /* Windows has no socket activation: nothing is ever passed, and the
   * daemon creates its pipe (endpoint_listen). */
  (void)name;
  memset(ep, 0, sizeof(*ep));
  if (errlen > 0)
    err[0] = '\0';
  return 0;
}

int endpoint_inherited(const struct endpoint *ep) {
  (void)ep;
  return 0;
}

int endpoint_accept_start(struct endpoint *ep, uv_loop_t *loop,
                          endpoint_accept_cb cb) {
  struct endpoint_win *w = ep->win;
  int rc;

  if (w == NULL || w->async_open)
    return UV_EINVAL;
  rc = uv_async_init(loop, &w->async, on_async);
  if (rc != 0)
    return rc;
  w->async.data = w;
  w->async_open = 1;
  ep->accept_cb = cb;
  rc = thread_start(&w->thread, "pf-accept", waiter, w);
  if (rc != 0)
    return rc; /* endpoint_close cleans up */
  w->thread_started = 1;
  return 0;
}

void endpoint_close(struct endpoint *ep) {
  struct endpoint_win *w = ep->win;

  ep->win = NULL;
  ep->path[0] = '\0';
  if (w == NULL)
    return;
  release(w);
  /* The async handle's memory is w: freed once the loop has closed it. */
  if (w->async_open)
    uv_close((uv_handle_t *)&w->async, on_async_closed);
  else
    free_win(w);
}
