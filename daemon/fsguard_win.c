/* fsguard_win.c - safe directories and log files on Windows; see fsguard.h.
 *
 * sshd's StrictModes, in Windows terms: a directory is trusted when it and
 * every ancestor is owned by SYSTEM, Administrators, TrustedInstaller or
 * the daemon's own user, and no one else is granted the rights that would
 * let them steer the daemon's writes:
 * - on the directory itself: creating entries (FILE_ADD_FILE,
 *   FILE_ADD_SUBDIRECTORY), deleting or renaming them (FILE_DELETE_CHILD,
 *   DELETE), or taking control (WRITE_DAC, WRITE_OWNER);
 * - on an ancestor: only deleting or renaming entries and taking control.
 *   Windows renames need DELETE on the entry or FILE_DELETE_CHILD on its
 *   parent, not the parent's write right as on Unix; and C:\ and
 *   C:\ProgramData let Users create folders, which Windows is installed
 *   with and which harms nobody: a folder someone makes is theirs, and
 *   the owner check refuses it.
 * Reparse points (symbolic links, junctions, mount points) are refused on
 * every component whatever strict_modes says, as symbolic links are on
 * Linux.
 *
 * Windows has no openat() in its Win32 API. Each component is opened by
 * its full path instead, without following a reparse point, and held open
 * without FILE_SHARE_DELETE until the walk (and, for a log file, its open)
 * is over: no one can rename or delete a directory we hold that way, so
 * the path keeps meaning the directories we judged. The handles have
 * FILE_LIST_DIRECTORY, a data right: Windows records share modes only for
 * opens that ask for one.
 *
 * 1. Paths: UTF-8 in, checked and normalised, UTF-16 out.
 * 2. Judging: owner and DACL, and the messages.
 * 3. The walk from the drive's root.
 * 4. Log files.
 * 5. Trusted by all (Windows only, declared in service.h): the config file
 *    and the folders `pipefiled install` uses, judged by the same rules,
 *    strictly whatever strict_modes says. */
#include "fsguard_win.h"
#include "fsguard.h"

#include <windows.h>

#include <aclapi.h> /* after windows.h, whose types they use */
#include <sddl.h>

#include <stdio.h>
#include <string.h>

#define FSG_PATH_MAX 2048 /* longest path taken, UTF-8 bytes, NUL included */
#define FSG_WPATH_MAX (FSG_PATH_MAX + 8) /* UTF-16 units, "\\?\" included */
#define FSG_NAME_MAX 255 /* a component, UTF-8 bytes (NTFS: 255 units) */
#define FSG_DEPTH_MAX 64 /* components walked, the drive's root included */
#define FSG_MSG_MAX (2 * FSG_PATH_MAX + 256) /* two paths and the reason */
#define FSG_ACCOUNT_MAX 256 /* "DOMAIN\name" of a principal, UTF-8 */
/* strict, whatever strict_modes says (section 5): complain() then offers
 * no override. */
#define FSG_ALWAYS 2

/* Rights that, granted to someone untrusted, let them steer what the
 * daemon writes. Generic rights appear in ACEs that Windows has not mapped
 * yet; GENERIC_WRITE maps to a file's write data and append data. */
#define FSG_DIR_BAD                                                            \
  (FILE_ADD_FILE | FILE_ADD_SUBDIRECTORY | FILE_DELETE_CHILD | DELETE |        \
   WRITE_DAC | WRITE_OWNER | GENERIC_WRITE | GENERIC_ALL)
#define FSG_ANCESTOR_BAD                                                       \
  (FILE_DELETE_CHILD | DELETE | WRITE_DAC | WRITE_OWNER | GENERIC_ALL)
#define FSG_FILE_BAD                                                           \
  (FILE_WRITE_DATA | FILE_APPEND_DATA | DELETE | WRITE_DAC | WRITE_OWNER |     \
   GENERIC_WRITE | GENERIC_ALL)

/* What a walked directory is opened with: its security descriptor and
 * attributes, and FILE_LIST_DIRECTORY so that the share mode holds (see
 * the top). */
#define FSG_DIR_ACCESS                                                         \
  (FILE_LIST_DIRECTORY | FILE_READ_ATTRIBUTES | READ_CONTROL | SYNCHRONIZE)
#define FSG_DIR_SHARE (FILE_SHARE_READ | FILE_SHARE_WRITE)

/* ---- 1. paths --------------------------------------------------------- */

/* A reserved DOS device name (CON, NUL, COM1, ...), with or without an
 * extension: "C:\logs\nul.log" is the NUL device to most of Windows. */
static int reserved_name(const char *p, size_t n) {
  static const char *const names[] = {"CON", "PRN",    "AUX",
                                      "NUL", "CONIN$", "CONOUT$"};
  size_t stem = 0;

  while (stem < n && p[stem] != '.')
    stem++;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i]) == stem && _strnicmp(p, names[i], stem) == 0)
      return 1;
  /* COM1-9 and LPT1-9 (Windows also takes superscript digits there; those
   * are not ASCII and left to CreateFileW, which opens the device only
   * without the "\\?\" prefix we always give). */
  return stem == 4 &&
         (_strnicmp(p, "COM", 3) == 0 || _strnicmp(p, "LPT", 3) == 0) &&
         p[3] >= '1' && p[3] <= '9';
}

/* Why the component p (n bytes) cannot be part of a path we walk, or NULL.
 * Windows drops trailing dots and spaces and reads ':' as a stream, so
 * such names are not what they say; the rest cannot exist on NTFS. */
static const char *bad_component(const char *p, size_t n) {
  if (n > FSG_NAME_MAX)
    return "a component longer than 255 bytes";
  if (p[n - 1] == '.' || p[n - 1] == ' ')
    return "a component that ends in a dot or a space, which Windows drops";
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == ':')
      return "a ':' (an alternate data stream)";
    if (c < 0x20 || strchr("<>\"|?*", c) != NULL)
      return "a character Windows does not allow in a name";
  }
  if (reserved_name(p, n))
    return "a reserved device name (CON, NUL, COM1, ...)";
  return NULL;
}

/* path, into norm (FSG_PATH_MAX bytes) as "X:\a\b": a drive letter in
 * upper case, backslashes, no empty or "." components, no trailing
 * separator, so that messages name each directory once and as Explorer
 * shows it. Refused: relative, UNC and device paths (\\server\share,
 * \\?\, \\.\: a share's permissions are the server's, and the others
 * bypass the checks below), "..", and the components bad_component
 * names. */
static int normalise(const char *what, const char *path, char *norm, char *err,
                     size_t errlen) {
  const char *p, *why = NULL;
  size_t len = 3;
  int rc = UV_EINVAL;

  if (path == NULL || path[0] == '\0') {
    snprintf(err, errlen, "%s (none): not an absolute path", what);
    return UV_EINVAL;
  }
  if (strlen(path) >= FSG_PATH_MAX) {
    snprintf(err, errlen, "%s %.64s...: path too long", what, path);
    return UV_ENAMETOOLONG;
  }
  if ((path[0] == '\\' || path[0] == '/') &&
      (path[1] == '\\' || path[1] == '/')) {
    snprintf(err, errlen,
             "%s %s: a UNC or device path; give a local path (C:\\...)", what,
             path);
    return UV_EINVAL;
  }
  if (!(((path[0] | 0x20) >= 'a' && (path[0] | 0x20) <= 'z') &&
        path[1] == ':' && (path[2] == '\\' || path[2] == '/'))) {
    snprintf(err, errlen, "%s %s: not an absolute path (C:\\...)", what, path);
    return UV_EINVAL;
  }
  norm[0] = (char)(path[0] & ~0x20);
  norm[1] = ':';
  norm[2] = '\\';
  for (p = path + 3;;) {
    size_t n = 0;

    while (*p == '\\' || *p == '/')
      p++;
    if (*p == '\0')
      break;
    while (p[n] != '\0' && p[n] != '\\' && p[n] != '/')
      n++;
    if (n == 2 && p[0] == '.' && p[1] == '.') {
      why = "\"..\" in the path; give it without";
    } else if (!(n == 1 && p[0] == '.')) {
      why = bad_component(p, n);
      if (why == NULL) {
        if (len > 3)
          norm[len++] = '\\';
        memcpy(norm + len, p, n);
        len += n;
      }
    }
    if (why != NULL) {
      if (n > FSG_NAME_MAX)
        rc = UV_ENAMETOOLONG;
      snprintf(err, errlen, "%s %s: %s", what, path, why);
      return rc;
    }
    p += n;
  }
  norm[len] = '\0';
  return 0;
}

/* UTF-8 s into w (FSG_WPATH_MAX units) with the prefix "\\?\", which
 * takes the path as it is (we normalised it) and past MAX_PATH. Returns 0
 * or UV_EINVAL (not UTF-8). */
static int widen(const char *s, wchar_t *w) {
  int n;

  wcscpy(w, L"\\\\?\\");
  n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w + 4,
                          FSG_WPATH_MAX - 4);
  return n > 0 ? 0 : UV_EINVAL;
}

/* UTF-16 w into UTF-8 buf, for messages; "?" if it will not go. */
static void narrow(const wchar_t *w, char *buf, size_t len) {
  if (WideCharToMultiByte(CP_UTF8, 0, w, -1, buf, (int)len, NULL, NULL) <= 0)
    snprintf(buf, len, "?");
}

/* ---- 2. judging --------------------------------------------------------- */

/* The principals the daemon trusts, made once: SYSTEM, Administrators,
 * TrustedInstaller (owner of much of C:\), the daemon's own user and,
 * under the SCM, its service SID (NT SERVICE\pipefiled: `pipefiled
 * install` grants the logs folder to it, so that other services running
 * as LocalService may not write there); and,
 * among those an ACE may name harmlessly, CREATOR OWNER (a template, never
 * a holder of rights on the object itself) and OWNER RIGHTS (the owner,
 * who is checked separately). */
enum {
  SID_SYSTEM,
  SID_ADMINS,
  SID_TI,
  SID_ME,
  SID_SVC,
  SID_CREATOR,
  SID_OWNER_RIGHTS,
  SID_COUNT
};
static BYTE sids[SID_COUNT][SECURITY_MAX_SID_SIZE];
static int sid_ok[SID_COUNT];
static char me_text[2 * FSG_ACCOUNT_MAX + 8]; /* the daemon, for messages */
static uv_once_t sids_once = UV_ONCE_INIT;

static void sid_name(PSID sid, char *buf, size_t len);

static void well_known(int i, WELL_KNOWN_SID_TYPE t) {
  DWORD n = SECURITY_MAX_SID_SIZE;
  sid_ok[i] = CreateWellKnownSid(t, NULL, sids[i], &n) != 0;
}

/* A service SID, S-1-5-80-a-b-c-d-e: the SHA-1 of one service's name.
 * Not S-1-5-80-0 (NT SERVICE\ALL SERVICES), which every service holds. */
static int service_sid(PSID sid) {
  static const SID_IDENTIFIER_AUTHORITY nt = {SECURITY_NT_AUTHORITY};

  return memcmp(GetSidIdentifierAuthority(sid), &nt, sizeof nt) == 0 &&
         *GetSidSubAuthorityCount(sid) == 6 &&
         *GetSidSubAuthority(sid, 0) == SECURITY_SERVICE_ID_BASE_RID;
}

/* The service SID among the token's enabled groups: the SCM adds it when
 * the service's SID type is set. Only if there is exactly one: a process
 * that hosts several services (svchost) is not what we trust. */
static void find_service_sid(HANDLE tok) {
  union {
    TOKEN_GROUPS tg;
    BYTE room[16384];
  } g;
  DWORD n, found = 0;
  PSID one = NULL;

  if (!GetTokenInformation(tok, TokenGroups, &g, sizeof g, &n))
    return;
  for (DWORD i = 0; i < g.tg.GroupCount; i++) {
    SID_AND_ATTRIBUTES *a = &g.tg.Groups[i];
    if ((a->Attributes & SE_GROUP_ENABLED) &&
        !(a->Attributes & SE_GROUP_USE_FOR_DENY_ONLY) && service_sid(a->Sid)) {
      one = a->Sid;
      found++;
    }
  }
  if (found == 1)
    sid_ok[SID_SVC] = CopySid(SECURITY_MAX_SID_SIZE, sids[SID_SVC], one) != 0;
}

static void sids_make(void) {
  HANDLE tok = NULL;
  union {
    TOKEN_USER tu;
    BYTE room[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
  } u;
  DWORD n;
  PSID ti = NULL;
  size_t used;

  well_known(SID_SYSTEM, WinLocalSystemSid);
  well_known(SID_ADMINS, WinBuiltinAdministratorsSid);
  well_known(SID_CREATOR, WinCreatorOwnerSid);
  well_known(SID_OWNER_RIGHTS, WinCreatorOwnerRightsSid);
  /* NT SERVICE\TrustedInstaller: the service SID of "TrustedInstaller",
   * the same on every machine. */
  if (ConvertStringSidToSidW(L"S-1-5-80-956008885-3418522649-1831038044-"
                             L"1853292631-2271478464",
                             &ti)) {
    sid_ok[SID_TI] = CopySid(SECURITY_MAX_SID_SIZE, sids[SID_TI], ti) != 0;
    LocalFree(ti);
  }
  /* The process's user, not a thread's impersonation: the logs are opened
   * by the daemon as itself. Unknown (sid_ok 0) means trusted by no
   * check, which refuses rather than trusts. */
  if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
    if (GetTokenInformation(tok, TokenUser, &u, sizeof u, &n))
      sid_ok[SID_ME] =
          CopySid(SECURITY_MAX_SID_SIZE, sids[SID_ME], u.tu.User.Sid) != 0;
    find_service_sid(tok);
    CloseHandle(tok);
  }
  if (sid_ok[SID_ME])
    sid_name(sids[SID_ME], me_text, sizeof me_text);
  else
    snprintf(me_text, sizeof me_text, "unknown");
  used = strlen(me_text);
  if (sid_ok[SID_SVC] && used + 5 < sizeof me_text) {
    memcpy(me_text + used, " and ", 5);
    sid_name(sids[SID_SVC], me_text + used + 5, sizeof me_text - used - 5);
  }
}

static int is(PSID sid, int i) { return sid_ok[i] && EqualSid(sid, sids[i]); }

/* One more SID trusted, for the duration of one fsguard_win_check_trusted
 * call on this thread only (section 5: `pipefiled install` run by an
 * administrator judges folders it grants to the service's SID). Thread
 * local, so that the daemon's own checks on other threads never see it. */
static _Thread_local PSID also_trusted;

static int owner_ok(PSID sid) {
  return is(sid, SID_SYSTEM) || is(sid, SID_ADMINS) || is(sid, SID_TI) ||
         is(sid, SID_ME) || is(sid, SID_SVC) ||
         (also_trusted != NULL && EqualSid(sid, also_trusted));
}

static int writer_ok(PSID sid) {
  return owner_ok(sid) || is(sid, SID_CREATOR) || is(sid, SID_OWNER_RIGHTS);
}

/* "DOMAIN\name" for a SID, else its "S-1-..." form. Only for messages:
 * a domain SID may need a domain controller to name. */
static void sid_name(PSID sid, char *buf, size_t len) {
  wchar_t name[128], dom[128], both[260];
  DWORD nn = 128, dn = 128;
  SID_NAME_USE use;
  wchar_t *s = NULL;

  if (LookupAccountSidW(NULL, sid, name, &nn, dom, &dn, &use)) {
    if (dom[0] != L'\0')
      _snwprintf(both, 260, L"%ls\\%ls", dom, name);
    else
      _snwprintf(both, 260, L"%ls", name);
    both[259] = L'\0';
    narrow(both, buf, len);
  } else if (ConvertSidToStringSidW(sid, &s)) {
    narrow(s, buf, len);
    LocalFree(s);
  } else {
    snprintf(buf, len, "an unreadable SID");
  }
}

/* "<what> <path>: <problem>", or, when the problem is with an ancestor at,
 * "<what> <path>: its ancestor <at> is <problem>". */
static void say(char *buf, size_t len, const char *what, const char *path,
                const char *at, const char *problem) {
  if (strcmp(at, path) == 0)
    snprintf(buf, len, "%s %s: %s", what, path, problem);
  else
    snprintf(buf, len, "%s %s: its ancestor %s is %s", what, path, at, problem);
}

/* A failed owner or DACL check: an error under strict_modes (UV_EPERM),
 * else a warning and 0, as sshd's StrictModes. */
static int complain(const char *what, const char *path, const char *at,
                    const char *problem, int strict, char *err, size_t errlen) {
  char msg[FSG_MSG_MAX];

  say(msg, sizeof msg, what, path, at, problem);
  if (strict == FSG_ALWAYS) { /* section 5: strict_modes has no say */
    snprintf(err, errlen, "%s; refusing", msg);
    return UV_EPERM;
  }
  if (strict) {
    snprintf(err, errlen, "%s; refusing (strict_modes = no to override)", msg);
    return UV_EPERM;
  }
  /* Handed up, not logged here: the log itself opens files through this
   * module. Several warnings are joined. */
  size_t used = strnlen(err, errlen);
  if (used + 1 < errlen)
    snprintf(err + used, errlen - used,
             "%s%s; continuing because strict_modes = no",
             used > 0 ? " | " : "", msg);
  return 0;
}

/* Judge h's owner and DACL (at: h's path, for messages). bad: the rights
 * no one untrusted may hold on it; how: what holding them means, after
 * "is". ACEs that only pass rights on to new children (INHERIT_ONLY) give
 * nothing on h and are skipped: files we create get a DACL of our own
 * (section 4), and a directory we make, too (section 3). Deny ACEs are
 * ignored, which can only make the check stricter. */
static int judge(HANDLE h, const char *what, const char *path, const char *at,
                 ACCESS_MASK bad, const char *how, int strict, char *err,
                 size_t errlen) {
  PSECURITY_DESCRIPTOR sd = NULL;
  PSID owner = NULL;
  PACL dacl = NULL;
  ACL_SIZE_INFORMATION info;
  char who[FSG_ACCOUNT_MAX], problem[FSG_ACCOUNT_MAX * 2 + 160];
  DWORD e;
  int rc = 0;

  uv_once(&sids_once, sids_make);
  e = GetSecurityInfo(h, SE_FILE_OBJECT,
                      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                      &owner, NULL, &dacl, NULL, &sd);
  if (e != ERROR_SUCCESS) {
    rc = uv_translate_sys_error((int)e);
    snprintf(problem, sizeof problem,
             "unreadable (its security descriptor: %s)", uv_strerror(rc));
    say(err, errlen, what, path, at, problem);
    goto out;
  }
  if (owner == NULL || !owner_ok(owner)) {
    if (owner != NULL)
      sid_name(owner, who, sizeof who);
    snprintf(problem, sizeof problem,
             "owned by %s, not SYSTEM, Administrators, TrustedInstaller or "
             "pipefiled's user (%s)",
             owner ? who : "no one", me_text);
    rc = complain(what, path, at, problem, strict, err, errlen);
    if (rc != 0)
      goto out;
  }
  if (dacl == NULL) {
    rc = complain(what, path, at,
                  "without a DACL (everyone has full access to it)", strict,
                  err, errlen);
    goto out;
  }
  if (!GetAclInformation(dacl, &info, sizeof info, AclSizeInformation)) {
    rc = uv_translate_sys_error((int)GetLastError());
    say(err, errlen, what, path, at, "unreadable (its DACL)");
    goto out;
  }
  for (DWORD i = 0; i < info.AceCount; i++) {
    ACE_HEADER *hdr;
    ACCESS_ALLOWED_ACE *ace;

    if (!GetAce(dacl, i, (void **)&hdr) || (hdr->AceFlags & INHERIT_ONLY_ACE))
      continue;
    if (hdr->AceType != ACCESS_ALLOWED_ACE_TYPE &&
        hdr->AceType != ACCESS_ALLOWED_CALLBACK_ACE_TYPE) {
      if (hdr->AceType == ACCESS_DENIED_ACE_TYPE ||
          hdr->AceType == ACCESS_DENIED_CALLBACK_ACE_TYPE ||
          hdr->AceType == SYSTEM_AUDIT_ACE_TYPE ||
          hdr->AceType == SYSTEM_MANDATORY_LABEL_ACE_TYPE)
        continue;
      /* An allow ACE of another layout (object ACEs, not used on files):
       * not read, so not trusted. */
      snprintf(problem, sizeof problem,
               "granting rights by an ACE of a kind not checked (type %u)",
               (unsigned)hdr->AceType);
      rc = complain(what, path, at, problem, strict, err, errlen);
      if (rc != 0)
        goto out;
      continue;
    }
    ace = (ACCESS_ALLOWED_ACE *)hdr;
    if ((ace->Mask & bad) == 0 || writer_ok((PSID)&ace->SidStart))
      continue;
    sid_name((PSID)&ace->SidStart, who, sizeof who);
    snprintf(problem, sizeof problem, "%s %s (its DACL grants 0x%08lx)", how,
             who, (unsigned long)ace->Mask);
    rc = complain(what, path, at, problem, strict, err, errlen);
    if (rc != 0)
      goto out;
  }
out:
  if (sd != NULL)
    LocalFree(sd);
  return rc;
}

/* What a file's attributes make it, for messages: fsguard.h's "mode" on
 * Windows is dwFileAttributes, with FILE_ATTRIBUTE_DEVICE standing for
 * whatever GetFileType says is not a disk file (a pipe, a console, a
 * device), which the attributes alone cannot tell. */
const char *fsguard_kind(unsigned m) {
  if (m & FILE_ATTRIBUTE_REPARSE_POINT)
    return "reparse point (a symbolic link, junction or mount point)";
  if (m & FILE_ATTRIBUTE_DEVICE)
    return "device";
  if (m & FILE_ATTRIBUTE_DIRECTORY)
    return "directory";
  return "regular file";
}

/* The attributes of h, with FILE_ATTRIBUTE_DEVICE for a non-disk file (see
 * fsguard_kind); the reparse tag in *tag when there is one. */
static int attributes(HANDLE h, DWORD *attr, DWORD *links, DWORD *tag) {
  BY_HANDLE_FILE_INFORMATION bh;
  FILE_ATTRIBUTE_TAG_INFO ti;

  *tag = 0;
  if (GetFileType(h) != FILE_TYPE_DISK) {
    *attr = FILE_ATTRIBUTE_DEVICE;
    *links = 1;
    return 0;
  }
  if (!GetFileInformationByHandle(h, &bh))
    return uv_translate_sys_error((int)GetLastError());
  *attr = bh.dwFileAttributes;
  *links = bh.nNumberOfLinks;
  if ((*attr & FILE_ATTRIBUTE_REPARSE_POINT) &&
      GetFileInformationByHandleEx(h, FileAttributeTagInfo, &ti, sizeof ti))
    *tag = ti.ReparseTag;
  return 0;
}

/* A reparse point at at (path or an ancestor) is refused whatever
 * strict_modes says: following it is how the daemon would be steered
 * elsewhere. rest: what path has after at. The message offers the real
 * path, resolved here only for the admin to read. */
static int refuse_reparse(const char *what, const char *path, const char *at,
                          const char *rest, DWORD tag, char *err,
                          size_t errlen) {
  char msg[FSG_MSG_MAX], real[FSG_PATH_MAX], problem[80];
  wchar_t w[FSG_WPATH_MAX], fin[FSG_WPATH_MAX];
  HANDLE h = INVALID_HANDLE_VALUE;
  DWORD n = 0;

  if (tag == IO_REPARSE_TAG_SYMLINK)
    snprintf(problem, sizeof problem, "a symbolic link");
  else if (tag == IO_REPARSE_TAG_MOUNT_POINT)
    snprintf(problem, sizeof problem, "a junction (mount point)");
  else if (tag != 0)
    snprintf(problem, sizeof problem, "a reparse point (tag 0x%08lx)",
             (unsigned long)tag);
  else
    snprintf(problem, sizeof problem, "a reparse point");
  say(msg, sizeof msg, what, path, at, problem);
  if (widen(at, w) == 0)
    h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                    OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  if (h != INVALID_HANDLE_VALUE) {
    n = GetFinalPathNameByHandleW(h, fin, FSG_WPATH_MAX, 0);
    CloseHandle(h);
  }
  if (n > 0 && n < FSG_WPATH_MAX) {
    narrow(wcsncmp(fin, L"\\\\?\\", 4) == 0 ? fin + 4 : fin, real, sizeof real);
    snprintf(err, errlen, "%s; refusing to follow it (use the real path, %s%s)",
             msg, real, rest);
  } else {
    snprintf(err, errlen, "%s; refusing to follow it (use the real path)", msg);
  }
  return UV_ELOOP;
}

/* ---- 3. the walk -------------------------------------------------------- */

/* The directories held during a walk, root first. */
struct chain {
  HANDLE h[FSG_DEPTH_MAX];
  int n;
};

static void chain_close(struct chain *c) {
  while (c->n > 0)
    CloseHandle(c->h[--c->n]);
}

/* The DACL of what we create, as SDDL: SYSTEM and Administrators full
 * control, and the daemon: its service SID when it has one (see
 * find_service_sid), else its user. With a service SID, OWNER RIGHTS is
 * limited to reading: the owner is the service's account (LocalService,
 * say), which other services share, and an owner may otherwise always
 * rewrite the DACL. inherit: "OICI" for a directory (passed on to what is
 * made in it), "" for a file. Returns the SD (LocalFree it), or NULL with
 * the reason in *rc. */
static PSECURITY_DESCRIPTOR own_sd(const wchar_t *inherit, const wchar_t *tail,
                                   int *rc) {
  PSECURITY_DESCRIPTOR sd = NULL;
  int w;
  wchar_t *who = NULL, sddl[512], owner[64] = L"";

  uv_once(&sids_once, sids_make);
  w = sid_ok[SID_SVC] ? SID_SVC : SID_ME;
  if (!sid_ok[w]) {
    *rc = UV_EPERM; /* not knowing who we are, we grant nothing */
    return NULL;
  }
  if (!ConvertSidToStringSidW(sids[w], &who)) {
    *rc = uv_translate_sys_error((int)GetLastError());
    return NULL;
  }
  if (w == SID_SVC)
    _snwprintf(owner, 64, L"(A;%ls;0x1200a9;;;OW)", inherit);
  owner[63] = L'\0';
  _snwprintf(sddl, 512,
             L"D:P(A;%ls;FA;;;SY)(A;%ls;FA;;;BA)(A;%ls;FA;;;%ls)%ls%ls",
             inherit, inherit, inherit, who, owner, tail);
  sddl[511] = L'\0';
  LocalFree(who);
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
          sddl, SDDL_REVISION_1, &sd, NULL)) {
    *rc = uv_translate_sys_error((int)GetLastError());
    return NULL;
  }
  return sd;
}

/* A directory we make: full control for SYSTEM, Administrators and the
 * daemon (own_sd), passed on to what is made in it; Authenticated Users
 * may list and read the directory itself (Linux's 0755), not its files.
 * Protected (P): nothing inherited from the parent, whose ACEs for new
 * folders (C:\ProgramData gives Users write) would fail our own check. */
#define FSG_DIR_TAIL L"(A;;0x1200a9;;;AU)"

/* Make the missing last directory w (already normalised): 0, or
 * UV_EEXIST when something appeared there meanwhile (the caller then
 * opens and judges it as any other), or the error. */
static int make_dir(const wchar_t *w) {
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  int rc = 0;

  sa.lpSecurityDescriptor = own_sd(L"OICI", FSG_DIR_TAIL, &rc);
  if (sa.lpSecurityDescriptor == NULL)
    return rc;
  if (!CreateDirectoryW(w, &sa))
    rc = uv_translate_sys_error((int)GetLastError());
  LocalFree(sa.lpSecurityDescriptor);
  return rc;
}

/* Walk norm (normalised) from its drive's root, opening each component
 * without following a reparse point, judging it, and holding it in c. The
 * last one is judged against FSG_DIR_BAD, the others against
 * FSG_ANCESTOR_BAD. On error c is closed. */
static int walk(const char *what, const char *norm, int strict, int create,
                struct chain *c, char *err, size_t errlen) {
  char at[FSG_PATH_MAX];
  wchar_t w[FSG_WPATH_MAX];
  size_t end = 3; /* at = norm[0..end): "X:\" first */
  int made = 0;   /* make_dir tried: once only */
  int rc = 0;

  c->n = 0;
  for (;;) {
    int last = norm[end] == '\0';
    DWORD attr, links, tag;
    HANDLE h;

    memcpy(at, norm, end);
    at[end] = '\0';
    rc = widen(at, w);
    if (rc != 0) {
      snprintf(err, errlen, "%s %s: not UTF-8", what, norm);
      goto out;
    }
    if (c->n == FSG_DEPTH_MAX) {
      rc = UV_ENAMETOOLONG;
      snprintf(err, errlen, "%s %s: more than %d directories deep", what, norm,
               FSG_DEPTH_MAX);
      goto out;
    }
    h = CreateFileW(w, FSG_DIR_ACCESS, FSG_DIR_SHARE, NULL, OPEN_EXISTING,
                    FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                    NULL);
    if (h == INVALID_HANDLE_VALUE) {
      DWORD e = GetLastError();

      rc = uv_translate_sys_error((int)e);
      if (last && create && !made &&
          (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)) {
        made = 1;
        rc = make_dir(w);
        if (rc != 0 && rc != UV_EEXIST) {
          snprintf(err, errlen, "%s %s: cannot create it: %s", what, norm,
                   uv_strerror(rc));
          goto out;
        }
        continue; /* made (or made meanwhile): open and judge it */
      }
      if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
        say(err, errlen, what, norm, at, "missing");
      else if (e == ERROR_SHARING_VIOLATION)
        say(err, errlen, what, norm, at,
            "open by another program for deletion or renaming");
      else
        snprintf(err, errlen, "%s %s: %s: %s", what, norm, at, uv_strerror(rc));
      goto out;
    }
    c->h[c->n++] = h;
    rc = attributes(h, &attr, &links, &tag);
    if (rc != 0) {
      snprintf(err, errlen, "%s %s: %s: %s", what, norm, at, uv_strerror(rc));
      goto out;
    }
    if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
      rc = refuse_reparse(what, norm, at, norm + end, tag, err, errlen);
      goto out;
    }
    if (!(attr & FILE_ATTRIBUTE_DIRECTORY) || (attr & FILE_ATTRIBUTE_DEVICE)) {
      rc = UV_ENOTDIR;
      say(err, errlen, what, norm, at, "not a directory");
      goto out;
    }
    rc = last ? judge(h, what, norm, at, FSG_DIR_BAD, "writable by", strict,
                      err, errlen)
              : judge(h, what, norm, at, FSG_ANCESTOR_BAD,
                      "open to deleting or renaming its entries by", strict,
                      err, errlen);
    if (rc != 0 || last)
      goto out;
    /* Next component: up to the next backslash. */
    if (end > 3)
      end++; /* past the separator */
    while (norm[end] != '\0' && norm[end] != '\\')
      end++;
  }
out:
  if (rc != 0)
    chain_close(c);
  return rc;
}

int fsguard_open_dir(const char *what, const char *path, int strict, int create,
                     uv_os_fd_t *dirfd, char *err, size_t errlen) {
  char norm[FSG_PATH_MAX];
  struct chain c;
  int rc;

  if (errlen > 0)
    err[0] = '\0'; /* no warning yet */
  *dirfd = INVALID_HANDLE_VALUE;
  rc = normalise(what, path, norm, err, errlen);
  if (rc != 0)
    return rc;
  rc = walk(what, norm, strict, create, &c, err, errlen);
  if (rc != 0)
    return rc;
  /* The caller keeps the directory (still without FILE_SHARE_DELETE:
   * pinned while held); the ancestors are let go. */
  *dirfd = c.h[--c.n];
  chain_close(&c);
  return 0;
}

/* ---- 4. log files ------------------------------------------------------- */

/* A log file we create gets own_sd's DACL, for SYSTEM, Administrators
 * and the daemon, no one else (Linux's 0640 without the group, which
 * Windows has no counterpart for). Protected, so that whatever the
 * directory passes on to new files does not widen it: an admin who wants
 * others to read the logs grants it on the files. */

/* The file opened for appending: FILE_APPEND_DATA without FILE_WRITE_DATA
 * makes every write go to the end, as O_APPEND; READ_CONTROL and
 * FILE_READ_ATTRIBUTES to judge it. Shared for reading (tail it),
 * deleting (rotation renames it while we write) and writing: a reload or a
 * reopen opens the file again before it lets go of the old handle (so a
 * failed open keeps the old one, as on Linux), and without write sharing
 * the daemon's own handle would refuse that. Every writer appends, so no
 * line overwrites another; who may write at all is the file's DACL's
 * business (ours: SYSTEM, Administrators and the daemon). */
#define FSG_LOG_ACCESS                                                         \
  (FILE_APPEND_DATA | SYNCHRONIZE | READ_CONTROL | FILE_READ_ATTRIBUTES)
#define FSG_LOG_SHARE (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)

int fsguard_open_log(const char *path, int strict, uv_os_fd_t *fd, char *err,
                     size_t errlen) {
  char norm[FSG_PATH_MAX], dir[FSG_PATH_MAX];
  wchar_t w[FSG_WPATH_MAX];
  SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
  struct chain c = {.n = 0};
  HANDLE f = INVALID_HANDLE_VALUE;
  DWORD attr, links, tag;
  size_t dirlen;
  int rc;

  if (errlen > 0)
    err[0] = '\0'; /* no warning yet */
  *fd = INVALID_HANDLE_VALUE;
  rc = normalise("log file", path, norm, err, errlen);
  if (rc != 0)
    return rc;
  if (norm[3] == '\0') { /* "C:\": no file name */
    snprintf(err, errlen, "log file %s: not a file path", path);
    return UV_EINVAL;
  }
  /* The directory: up to the last backslash, or the root's "X:\". */
  dirlen = (size_t)(strrchr(norm, '\\') - norm);
  if (dirlen < 3)
    dirlen = 3;
  memcpy(dir, norm, dirlen);
  dir[dirlen] = '\0';
  /* Walked and held while the file is opened by its full path: each
   * component's handle stops it being renamed meanwhile. */
  rc = walk("log directory", dir, strict, 0, &c, err, errlen);
  if (rc != 0)
    return rc;
  rc = widen(norm, w);
  if (rc != 0) {
    snprintf(err, errlen, "log file %s: not UTF-8", norm);
    goto out;
  }
  sa.lpSecurityDescriptor = own_sd(L"", L"", &rc);
  if (sa.lpSecurityDescriptor == NULL) {
    snprintf(err, errlen,
             "log file %s: cannot make its security descriptor: %s", norm,
             uv_strerror(rc));
    goto out;
  }
  /* FILE_FLAG_OPEN_REPARSE_POINT: a link there is opened itself, not
   * followed, and refused below. A new file gets our DACL; an existing one
   * is judged as it is. */
  f = CreateFileW(w, FSG_LOG_ACCESS, FSG_LOG_SHARE, &sa, OPEN_ALWAYS,
                  FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (f == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError(), a;

    rc = uv_translate_sys_error((int)e);
    a = GetFileAttributesW(w);
    if (e == ERROR_ACCESS_DENIED && a != INVALID_FILE_ATTRIBUTES &&
        (a & FILE_ATTRIBUTE_DIRECTORY)) {
      rc = UV_EISDIR;
      snprintf(err, errlen,
               "log file %s: a directory, not a regular file; refusing", norm);
    } else if (e == ERROR_SHARING_VIOLATION) {
      /* Another program holds it without sharing (we share everything). */
      snprintf(err, errlen,
               "log file %s: in use by another program (a sharing "
               "violation: it holds the file without sharing)",
               norm);
    } else {
      snprintf(err, errlen, "log file %s: %s", norm, uv_strerror(rc));
    }
    goto out;
  }
  rc = attributes(f, &attr, &links, &tag);
  if (rc != 0) {
    snprintf(err, errlen, "log file %s: %s", norm, uv_strerror(rc));
    goto out;
  }
  if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
    rc = refuse_reparse("log file", norm, norm, "", tag, err, errlen);
    goto out;
  }
  if (attr & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) {
    rc = UV_EINVAL;
    snprintf(err, errlen, "log file %s: a %s, not a regular file; refusing",
             norm, fsguard_kind(attr));
    goto out;
  }
  rc = judge(f, "log file", norm, norm, FSG_FILE_BAD, "writable by", strict,
             err, errlen);
  if (rc != 0)
    goto out;
  /* A second hard link would let whoever made it point our appends at a
   * file of theirs, or theirs at ours. */
  if (links > 1) {
    char problem[64];
    snprintf(problem, sizeof problem, "a file with %lu hard links",
             (unsigned long)links);
    rc = complain("log file", norm, norm, problem, strict, err, errlen);
    if (rc != 0)
      goto out;
  }
  *fd = f;
  f = INVALID_HANDLE_VALUE;
out:
  if (f != INVALID_HANDLE_VALUE)
    CloseHandle(f);
  if (sa.lpSecurityDescriptor != NULL)
    LocalFree(sa.lpSecurityDescriptor);
  chain_close(&c);
  return rc;
}

/* ---- 5. trusted by all -------------------------------------------------- */

/* What the config says cannot vouch for the config: a file anyone else can
 * write (or whose folder they can, or an ancestor's entries they can
 * rename) would let them choose strict_modes, the root and the pipe's
 * DACL of a daemon that impersonates every client. So its chain is walked
 * as a log directory's, then the file is judged as a log file is (owner,
 * FSG_FILE_BAD), all with FSG_ALWAYS. The daemon's own account is trusted,
 * as for logs: an administrator's or the service's own files pass.
 * Hard links are not refused: a second name for a file no one else can
 * write gives no one a way to change what it says. The handles are let go
 * on return; the caller then reads the file by its path, which is sound
 * because no one untrusted can rename or add entries along it.
 * also: one more SID (SDDL text, "S-1-5-80-...") trusted as if it were
 * ours, or NULL; see also_trusted. */
int fsguard_win_check_trusted(const char *what, const char *path, int is_file,
                              const char *also, char *err, size_t errlen) {
  char norm[FSG_PATH_MAX], dir[FSG_PATH_MAX], dirwhat[96];
  wchar_t w[FSG_WPATH_MAX];
  struct chain c = {.n = 0};
  HANDLE f = INVALID_HANDLE_VALUE;
  DWORD attr, links, tag;
  PSID extra = NULL;
  size_t dirlen;
  int rc;

  if (errlen > 0)
    err[0] = '\0';
  rc = normalise(what, path, norm, err, errlen);
  if (rc != 0)
    return rc;
  if (also != NULL && !ConvertStringSidToSidA(also, &extra)) {
    rc = UV_EINVAL;
    snprintf(err, errlen, "%s %s: %s is not a SID", what, norm, also);
    return rc;
  }
  also_trusted = extra;
  if (!is_file) {
    rc = walk(what, norm, FSG_ALWAYS, 0, &c, err, errlen);
    goto out;
  }
  if (norm[3] == '\0') { /* "C:\": no file name */
    snprintf(err, errlen, "%s %s: not a file path", what, path);
    return UV_EINVAL;
  }
  dirlen = (size_t)(strrchr(norm, '\\') - norm);
  if (dirlen < 3)
    dirlen = 3;
  memcpy(dir, norm, dirlen);
  dir[dirlen] = '\0';
  snprintf(dirwhat, sizeof dirwhat, "the folder of the %s", what);
  rc = walk(dirwhat, dir, FSG_ALWAYS, 0, &c, err, errlen);
  if (rc != 0)
    goto out;
  rc = widen(norm, w);
  if (rc != 0) {
    snprintf(err, errlen, "%s %s: not UTF-8", what, norm);
    goto out;
  }
  /* Only to read its security descriptor and attributes; a link is
   * opened itself (and refused), a directory too (BACKUP_SEMANTICS). */
  f = CreateFileW(w, READ_CONTROL | FILE_READ_ATTRIBUTES,
                  FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                  OPEN_EXISTING,
                  FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS,
                  NULL);
  if (f == INVALID_HANDLE_VALUE) {
    DWORD e = GetLastError();
    rc = uv_translate_sys_error((int)e);
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
      snprintf(err, errlen, "%s %s: missing", what, norm);
    else
      snprintf(err, errlen, "%s %s: %s", what, norm, uv_strerror(rc));
    goto out;
  }
  rc = attributes(f, &attr, &links, &tag);
  if (rc != 0) {
    snprintf(err, errlen, "%s %s: %s", what, norm, uv_strerror(rc));
    goto out;
  }
  if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
    rc = refuse_reparse(what, norm, norm, "", tag, err, errlen);
    goto out;
  }
  if (attr & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE)) {
    rc = UV_EINVAL;
    snprintf(err, errlen, "%s %s: a %s, not a regular file", what, norm,
             fsguard_kind(attr));
    goto out;
  }
  rc = judge(f, what, norm, norm, FSG_FILE_BAD, "writable by", FSG_ALWAYS, err,
             errlen);
out:
  also_trusted = NULL;
  LocalFree(extra);
  if (f != INVALID_HANDLE_VALUE)
    CloseHandle(f);
  chain_close(&c);
  return rc;
}
