/* test_endpoint_win.c - unit tests of daemon/endpoint_win.c's security
 * descriptor and name keeping, under wine or Windows: the SID the daemon
 * names itself by (its service SID when it has exactly one), the rights its
 * own ACE grants, the squatting check (object ACEs fail closed), and that a
 * lapsed name is never joined.
 *
 * endpoint_win.c is included, not linked: these are its static parts, and
 * wine cannot show them from outside (GetSecurityInfo on a pipe returns no
 * DACL there, tokens have no service SIDs, ACLs are not enforced). What
 * only Windows can show (another account's pipe refused, the ACL enforced)
 * is right by construction; see the comments in endpoint_win.c. */
#include "endpoint_win.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* NT SERVICE\pipefiled and NT SERVICE\TrustedInstaller. */
#define SVC_PIPEFILED                                                          \
  L"S-1-5-80-756166237-3088793109-59807773-1750720689-3947911101"
#define SVC_TI L"S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464"

static PSID sid_of(const wchar_t *s) {
  PSID sid = NULL;
  assert_true(ConvertStringSidToSidW(s, &sid));
  return sid; /* LocalFree */
}

static int sid_is(PSID sid, const wchar_t *s) {
  PSID want = sid_of(s);
  int same = EqualSid(sid, want);
  LocalFree(want);
  return same;
}

/* ---- 1. the daemon's own SID ------------------------------------------ */

static void test_pick_sid(void **state) {
  (void)state;
  PSID ls = sid_of(L"S-1-5-19");
  PSID all = sid_of(L"S-1-5-80-0");
  PSID pf = sid_of(SVC_PIPEFILED);
  PSID ti = sid_of(SVC_TI);
  PSID users = sid_of(L"S-1-5-32-545");
  union {
    TOKEN_GROUPS tg;
    char room[sizeof(TOKEN_GROUPS) + 4 * sizeof(SID_AND_ATTRIBUTES)];
  } g;
  PSID got;

  memset(&g, 0, sizeof(g));
  g.tg.GroupCount = 3;
  g.tg.Groups[0].Sid = users;
  g.tg.Groups[0].Attributes = SE_GROUP_ENABLED;
  /* ALL SERVICES is every service's: never the daemon's own. */
  g.tg.Groups[1].Sid = all;
  g.tg.Groups[1].Attributes = SE_GROUP_ENABLED;
  g.tg.Groups[2].Sid = pf;
  g.tg.Groups[2].Attributes = SE_GROUP_ENABLED | SE_GROUP_ENABLED_BY_DEFAULT;

  /* A LocalService service with its service SID: named by that. */
  got = pick_sid(&g.tg, ls);
  assert_true(sid_is(got, SVC_PIPEFILED));
  free(got);

  /* Only for deny, or not enabled: not ours to be named by. */
  g.tg.Groups[2].Attributes = SE_GROUP_ENABLED | SE_GROUP_USE_FOR_DENY_ONLY;
  got = pick_sid(&g.tg, ls);
  assert_true(sid_is(got, L"S-1-5-19"));
  free(got);
  g.tg.Groups[2].Attributes = 0;
  got = pick_sid(&g.tg, ls);
  assert_true(sid_is(got, L"S-1-5-19"));
  free(got);

  /* Two service SIDs (a shared host process): neither is ours alone. */
  g.tg.Groups[2].Attributes = SE_GROUP_ENABLED;
  g.tg.GroupCount = 4;
  g.tg.Groups[3].Sid = ti;
  g.tg.Groups[3].Attributes = SE_GROUP_ENABLED;
  got = pick_sid(&g.tg, ls);
  assert_true(sid_is(got, L"S-1-5-19"));
  free(got);

  /* No groups read: the user. */
  got = pick_sid(NULL, ls);
  assert_true(sid_is(got, L"S-1-5-19"));
  free(got);

  LocalFree(ls);
  LocalFree(all);
  LocalFree(pf);
  LocalFree(ti);
  LocalFree(users);
}

/* The DACL make_sd builds from the default SDDL: the SDDL's three ACEs,
 * then the daemon's own SID with create-instance and data rights only (no
 * WRITE_DAC, WRITE_OWNER, DELETE: not FILE_ALL_ACCESS), then OWNER RIGHTS
 * read-only (the owner's implicit WRITE_DAC removed). */
static void test_own_ace(void **state) {
  (void)state;
  struct endpoint_win w;
  char err[512];
  ACCESS_ALLOWED_ACE *ace;
  PSID user = NULL, owner = NULL;
  BOOL defaulted;
  PSID self = own_sid(&user);

  memset(&w, 0, sizeof(w));
  assert_non_null(self);
  assert_int_equal(make_sd(&w, "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)",
                           1, err, sizeof(err)),
                   0);
  assert_int_equal(w.dacl->AceCount, 5);
  assert_true(GetAce(w.dacl, 3, (void **)&ace));
  assert_int_equal(ace->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
  assert_true(EqualSid(&ace->SidStart, self));
  assert_int_equal(ace->Mask, 0x12019f);
  assert_int_equal(ace->Mask & (WRITE_DAC | WRITE_OWNER | DELETE | GENERIC_ALL |
                                ACCESS_SYSTEM_SECURITY),
                   0);
  assert_true(ace->Mask & FILE_CREATE_PIPE_INSTANCE);
  assert_true(GetAce(w.dacl, 4, (void **)&ace));
  assert_true(sid_is(&ace->SidStart, L"S-1-3-4"));
  assert_int_equal(ace->Mask, READ_CONTROL);
  /* No O: in the SDDL: the owner is the daemon's user, said. */
  assert_true(GetSecurityDescriptorOwner(&w.sd, &owner, &defaulted));
  assert_non_null(owner);
  assert_true(EqualSid(owner, user));
  free(self);
  free(user);
  LocalFree(w.parsed);
  free(w.dacl);
  free(w.user);
}

/* ---- 3. the squatting check ------------------------------------------- */

/* An ACL of one ACE made by add, then check_squat on it. */
static int squat(int type, ACCESS_MASK mask, const wchar_t *who, PSID self,
                 int strict, char *err, size_t errlen) {
  union {
    ACL acl;
    char room[512];
  } u;
  PSID sid = sid_of(who);
  int rc;

  assert_true(InitializeAcl(&u.acl, sizeof(u), ACL_REVISION_DS));
  if (type == ACCESS_ALLOWED_OBJECT_ACE_TYPE) {
    /* By hand (wine has no AddAccessAllowedObjectAce): header, mask, flags
     * (no GUIDs present), SID. */
    union {
      ACCESS_ALLOWED_OBJECT_ACE oa;
      char room[sizeof(ACCESS_ALLOWED_OBJECT_ACE) + SECURITY_MAX_SID_SIZE];
    } a;
    DWORD off = offsetof(ACCESS_ALLOWED_OBJECT_ACE, ObjectType);
    memset(&a, 0, sizeof(a));
    a.oa.Header.AceType = ACCESS_ALLOWED_OBJECT_ACE_TYPE;
    a.oa.Header.AceSize = (WORD)(off + GetLengthSid(sid));
    a.oa.Mask = mask;
    a.oa.Flags = 0;
    assert_true(CopySid(GetLengthSid(sid), (char *)&a + off, sid));
    assert_true(
        AddAce(&u.acl, ACL_REVISION_DS, MAXDWORD, &a, a.oa.Header.AceSize));
  } else if (type == ACCESS_DENIED_ACE_TYPE)
    assert_true(AddAccessDeniedAce(&u.acl, ACL_REVISION, mask, sid));
  else
    assert_true(AddAccessAllowedAce(&u.acl, ACL_REVISION, mask, sid));
  err[0] = '\0';
  rc = check_squat("test", &u.acl, self, strict, err, errlen);
  LocalFree(sid);
  return rc;
}

static void test_check_squat(void **state) {
  (void)state;
  char err[512];
  PSID pf = sid_of(SVC_PIPEFILED);

  /* Read and write data: a client's rights, fine for anyone. */
  assert_int_equal(
      squat(ACCESS_ALLOWED_ACE_TYPE, 0x12019b, L"S-1-5-11", pf, 1, err, 512),
      0);
  /* Creating instances: the daemon's own SID, SYSTEM, Administrators only. */
  assert_int_equal(squat(ACCESS_ALLOWED_ACE_TYPE, GENERIC_WRITE, SVC_PIPEFILED,
                         pf, 1, err, 512),
                   0);
  assert_int_equal(
      squat(ACCESS_ALLOWED_ACE_TYPE, GENERIC_ALL, L"S-1-5-18", pf, 1, err, 512),
      0);
  assert_int_equal(squat(ACCESS_ALLOWED_ACE_TYPE, FILE_CREATE_PIPE_INSTANCE,
                         L"S-1-1-0", pf, 1, err, 512),
                   UV_EINVAL);
  assert_non_null(strstr(err, "S-1-1-0"));
  /* The daemon named by its service SID: LocalService, its user, shared
   * with other services, may not create instances. */
  assert_int_equal(squat(ACCESS_ALLOWED_ACE_TYPE, GENERIC_WRITE, L"S-1-5-19",
                         pf, 1, err, 512),
                   UV_EINVAL);
  assert_non_null(strstr(err, "S-1-5-19"));
  /* strict_modes = no: a warning, served anyway. */
  assert_int_equal(squat(ACCESS_ALLOWED_ACE_TYPE, GENERIC_WRITE, L"S-1-1-0", pf,
                         0, err, 512),
                   0);
  /* A deny only narrows. */
  assert_int_equal(
      squat(ACCESS_DENIED_ACE_TYPE, GENERIC_ALL, L"S-1-1-0", pf, 1, err, 512),
      0);
  /* An object ACE (OA) is not read: refused whatever it grants, even
   * nothing that matters, and even to the daemon itself. */
  assert_int_equal(squat(ACCESS_ALLOWED_OBJECT_ACE_TYPE, GENERIC_WRITE,
                         L"S-1-1-0", pf, 1, err, 512),
                   UV_EINVAL);
  assert_non_null(strstr(err, "type 5"));
  assert_int_equal(squat(ACCESS_ALLOWED_OBJECT_ACE_TYPE, FILE_READ_DATA,
                         SVC_PIPEFILED, pf, 1, err, 512),
                   UV_EINVAL);
  LocalFree(pf);
}

/* ---- 2. a lapsed name is not joined ----------------------------------- */

/* With no instance of ours held, next_instance makes only a first
 * instance: a pipe of that name made by someone else meanwhile (here by
 * this test, as another process would) is never joined. Needs
 * FILE_FLAG_FIRST_PIPE_INSTANCE enforced: skipped where it is not. */
static void test_lapse_not_joined(void **state) {
  (void)state;
  struct endpoint w;
  struct endpoint_win *ew;
  char err[512];
  HANDLE other, probe, h;
  const char *name8 = "\\\\.\\pipe\\test_endpoint_win-lapse";
  struct endpoint_opts o = {
      .sddl = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;0x12019b;;;AU)", .strict = 1};

  assert_int_equal(endpoint_listen(&w, name8, &o, err, sizeof(err)), 0);
  ew = w.win;
  /* Give up every instance: the name lapses. */
  for (int i = 0; i < ENDPOINT_PENDING; i++)
    drop_instance(&ew->slot[i]);
  other = CreateNamedPipeW(ew->name, PIPE_ACCESS_DUPLEX,
                           PIPE_TYPE_BYTE | PIPE_WAIT, 4, 4096, 4096, 0, NULL);
  assert_true(other != INVALID_HANDLE_VALUE);
  probe = CreateNamedPipeW(ew->name,
                           PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE,
                           PIPE_TYPE_BYTE | PIPE_WAIT, 4, 4096, 4096, 0, NULL);
  if (probe != INVALID_HANDLE_VALUE) {
    CloseHandle(probe);
    CloseHandle(other);
    endpoint_close(&w);
    skip(); /* wine: FILE_FLAG_FIRST_PIPE_INSTANCE not enforced */
  }
  h = next_instance(ew);
  assert_true(h == INVALID_HANDLE_VALUE);
  /* The other pipe gone, the name is ours again. */
  CloseHandle(other);
  h = next_instance(ew);
  assert_true(h != INVALID_HANDLE_VALUE);
  ew->slot[0].pipe = h;
  /* Holding one: the next joins our own pipe. */
  h = next_instance(ew);
  assert_true(h != INVALID_HANDLE_VALUE);
  CloseHandle(h);
  endpoint_close(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pick_sid),
      cmocka_unit_test(test_own_ace),
      cmocka_unit_test(test_check_squat),
      cmocka_unit_test(test_lapse_not_joined),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
