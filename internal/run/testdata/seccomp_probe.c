// seccomp_probe makes the system call its argument names and prints "ok"
// or the name of the errno it failed with. The seccomp tests build it
// statically and run it in a container.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

// newest is a call newer than any profile names (file_getattr, Linux 6.17;
// calls from 424 on have one number on every architecture).
#define NEWEST_CALL 468

// reap finishes a fork-like call: the child exits at once, the parent
// waits for it. It returns -1 with errno set when the call failed.
static long reap(long r) {
	if (r == 0)
		_exit(0);
	if (r > 0)
		waitpid((pid_t)r, NULL, __WALL);
	return r < 0 ? -1 : 0;
}

static void *thread_main(void *arg) { return arg; }

static long probe(const char *name) {
	if (!strcmp(name, "threads")) {
		pthread_t t;
		int err = pthread_create(&t, NULL, thread_main, NULL);
		if (err) {
			errno = err;
			return -1;
		}
		return pthread_join(t, NULL);
	}
	if (!strcmp(name, "fork-exec")) {
		pid_t pid = fork();
		if (pid == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		if (pid < 0)
			return -1;
		int status;
		if (waitpid(pid, &status, 0) < 0)
			return -1;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			errno = ECHILD;
			return -1;
		}
		return 0;
	}
	if (!strcmp(name, "clone-newuser"))
		return reap(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
	if (!strcmp(name, "unshare-user"))
		return unshare(CLONE_NEWUSER);
	if (!strcmp(name, "clone3")) {
		struct clone_args args;
		memset(&args, 0, sizeof(args));
		args.exit_signal = SIGCHLD;
		return reap(syscall(SYS_clone3, &args, sizeof(args)));
	}
	if (!strcmp(name, "personality-query"))
		return personality(0xffffffff) < 0 ? -1 : 0;
	if (!strcmp(name, "personality-no-aslr"))
		return personality(ADDR_NO_RANDOMIZE) < 0 ? -1 : 0;
	if (!strcmp(name, "keyctl"))
		return syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0) < 0 ? -1 : 0;
	if (!strcmp(name, "io_uring_setup")) {
		uint8_t params[120];
		memset(params, 0, sizeof(params));
		long fd = syscall(SYS_io_uring_setup, 1, params);
		return fd < 0 ? -1 : close((int)fd);
	}
	if (!strcmp(name, "socket-alg") || !strcmp(name, "socket-vsock") || !strcmp(name, "socket-unix")) {
		int family = name[7] == 'a' ? AF_ALG : name[7] == 'v' ? AF_VSOCK : AF_UNIX;
		int fd = socket(family, family == AF_ALG ? SOCK_SEQPACKET : SOCK_STREAM, 0);
		return fd < 0 ? -1 : close(fd);
	}
	if (!strcmp(name, "mkdir")) {
		if (mkdir("/tmp/seccomp-probe", 0755) < 0)
			return -1;
		return rmdir("/tmp/seccomp-probe");
	}
	if (!strcmp(name, "newest-call"))
		return syscall(NEWEST_CALL, -1, NULL, NULL, 0, 0);
	errno = EINVAL;
	fprintf(stderr, "unknown probe %s\n", name);
	return -1;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		errno = 0;
		if (probe(argv[i]) < 0)
			printf("%s %s\n", argv[i], strerrorname_np(errno));
		else
			printf("%s ok\n", argv[i]);
	}
	return 0;
}
