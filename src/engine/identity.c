/* SPDX-License-Identifier: Apache-2.0 */
/* Per-tenant identities of function processes: resolved at engine start, applied in the child. */
#include "engine/identity_internal.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define NAME_MAX_LEN PD_ACCOUNT_NAME_MAX /* what config validation allows */

/* "1234" -> 1234; false if name is not made of digits only or does not fit an id. */
static bool numeric_id(const char *name, unsigned long *out)
{
	if (name[0] == '\0' || strspn(name, "0123456789") != strlen(name) || strlen(name) > 10)
		return false;
	unsigned long v = strtoul(name, NULL, 10);
	if (v >= (unsigned long)(uid_t)-1)
		return false; /* (uid_t)-1 means "unchanged" to setuid and friends */
	*out = v;
	return true;
}

/* A buffer big enough for getpwnam_r/getgrnam_r (their own hint, or 16 KiB). */
static char *nss_buffer(int which, size_t *len)
{
	long hint = sysconf(which);
	*len = hint > 0 ? (size_t)hint : 16384;
	if (*len < 16384)
		*len = 16384;
	return malloc(*len);
}

static int lookup_user(const char *name, uid_t *uid, gid_t *gid, bool *found)
{
	size_t len;
	char *buf = nss_buffer(_SC_GETPW_R_SIZE_MAX, &len);
	if (buf == NULL)
		return -ENOMEM;
	struct passwd pw, *res = NULL;
	unsigned long num;
	int rc;
	if (numeric_id(name, &num)) {
		rc = getpwuid_r((uid_t)num, &pw, buf, len, &res);
		*uid = (uid_t)num;
		/* A numeric uid needs no passwd entry: its group is then the same number. */
		*gid = res != NULL ? res->pw_gid : (gid_t)num;
		*found = true;
		free(buf);
		return 0;
	}
	rc = getpwnam_r(name, &pw, buf, len, &res);
	*found = res != NULL;
	if (res != NULL) {
		*uid = res->pw_uid;
		*gid = res->pw_gid;
	}
	free(buf);
	/* Not found is rc 0 (or ENOENT/ESRCH/EBADF/EPERM from some NSS modules) and res NULL. */
	if (res == NULL && rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM)
		return -rc;
	return 0;
}

static int lookup_group(const char *name, gid_t *gid, bool *found)
{
	unsigned long num;
	if (numeric_id(name, &num)) {
		*gid = (gid_t)num;
		*found = true;
		return 0;
	}
	size_t len;
	char *buf = nss_buffer(_SC_GETGR_R_SIZE_MAX, &len);
	if (buf == NULL)
		return -ENOMEM;
	struct group gr, *res = NULL;
	int rc = getgrnam_r(name, &gr, buf, len, &res);
	*found = res != NULL;
	if (res != NULL)
		*gid = res->gr_gid;
	free(buf);
	if (res == NULL && rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM)
		return -rc;
	return 0;
}

int identity_resolve(const struct pd_config *cfg, uint32_t tenant, bool as_root,
                     struct identity *id, char *err, size_t errlen)
{
	const struct pd_config_tenant *t = &cfg->tenants[tenant];
	memset(id, 0, sizeof(*id));
	if (!as_root) {
		id->uid = geteuid();
		id->gid = getegid();
		return 0;
	}
	id->drop = true;
	if (t->run_as == NULL) {
		id->uid = (uid_t)(IDENTITY_DEFAULT_BASE + tenant);
		id->gid = (gid_t)(IDENTITY_DEFAULT_BASE + tenant);
		return 0;
	}
	id->from_run_as = true;

	char user[NAME_MAX_LEN + 1], group[NAME_MAX_LEN + 1] = "";
	const char *colon = strchr(t->run_as, ':');
	size_t ulen = colon != NULL ? (size_t)(colon - t->run_as) : strlen(t->run_as);
	if (ulen == 0 || ulen > NAME_MAX_LEN ||
	    (colon != NULL && (colon[1] == '\0' || strlen(colon + 1) > NAME_MAX_LEN ||
	                       strchr(colon + 1, ':') != NULL))) {
		snprintf(err, errlen, "run_as \"%s\" is not \"user\" or \"user:group\"", t->run_as);
		return -EINVAL;
	}
	memcpy(user, t->run_as, ulen);
	user[ulen] = '\0';
	if (colon != NULL)
		snprintf(group, sizeof(group), "%s", colon + 1);

	bool found;
	int rc = lookup_user(user, &id->uid, &id->gid, &found);
	if (rc != 0) {
		snprintf(err, errlen, "run_as \"%s\": looking up user %s: %s", t->run_as, user,
		         strerror(-rc));
		return rc;
	}
	if (!found) {
		snprintf(err, errlen, "run_as \"%s\": no such user \"%s\" on this host", t->run_as,
		         user);
		return -ENOENT;
	}
	if (group[0] != '\0') {
		rc = lookup_group(group, &id->gid, &found);
		if (rc != 0) {
			snprintf(err, errlen, "run_as \"%s\": looking up group %s: %s", t->run_as,
			         group, strerror(-rc));
			return rc;
		}
		if (!found) {
			snprintf(err, errlen, "run_as \"%s\": no such group \"%s\" on this host",
			         t->run_as, group);
			return -ENOENT;
		}
	}
	if (id->uid == 0 || id->gid == 0) {
		snprintf(err, errlen,
		         "run_as \"%s\" resolves to %s 0: a tenant's functions never run as root "
		         "(they would not be isolated from anything)",
		         t->run_as, id->uid == 0 ? "uid" : "gid");
		return -EPERM;
	}
	return 0;
}

int identity_account_of(uid_t uid, char *name, size_t len)
{
	size_t blen;
	char *buf = nss_buffer(_SC_GETPW_R_SIZE_MAX, &blen);
	if (buf == NULL)
		return -ENOMEM;
	struct passwd pw, *res = NULL;
	int rc = getpwuid_r(uid, &pw, buf, blen, &res);
	if (res != NULL)
		snprintf(name, len, "%s", res->pw_name);
	free(buf);
	if (res != NULL)
		return 0;
	return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM ? -ENOENT : -rc;
}

int identity_apply(const struct identity *id, const char **step)
{
	if (id->drop) {
		/* Groups first: once the uid is dropped, nothing can be changed any more. */
		gid_t groups[1] = {id->gid};
		if (setgroups(1, groups) != 0) {
			*step = "setgroups";
			return -errno;
		}
		if (setgid(id->gid) != 0) {
			*step = "setgid";
			return -errno;
		}
		if (setuid(id->uid) != 0) {
			*step = "setuid";
			return -errno;
		}
		/* Read the result back rather than trust the return codes alone. */
		uid_t ruid, euid, suid;
		gid_t rgid, egid, sgid;
		if (getresuid(&ruid, &euid, &suid) != 0 || getresgid(&rgid, &egid, &sgid) != 0 ||
		    ruid != id->uid || euid != id->uid || suid != id->uid || rgid != id->gid ||
		    egid != id->gid || sgid != id->gid) {
			*step = "credentials check";
			return -EPERM;
		}
		if (setuid(0) == 0) {
			*step = "privileges still held after setuid";
			return -EPERM;
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		*step = "prctl(PR_SET_NO_NEW_PRIVS)";
		return -errno;
	}
	return 0;
}
