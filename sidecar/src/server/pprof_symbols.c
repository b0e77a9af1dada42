/*
 * pprof_symbols.c - function names for the addresses of another process (see
 * pprof_symbols.h).
 *
 * The target's ELF files are untrusted input (the process may be hostile or a file may
 * change under us): every offset and size is checked against the file size before it is
 * used, every count is bounded before it drives a loop, and files are opened by inode
 * through /proc so that the target cannot swap in another file. Symbols are loaded lazily,
 * the first time an address in a file is named, so files no sample touches cost nothing.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "pprof_symbols.h"

#define MAX_ELF_FILES 1024          /* distinct mapped files opened for symbols */
#define MAX_ELF_SECTIONS (1u << 20) /* e_shnum (or its extension) above this is not believed */
#define MAX_ELF_READ (64ull << 20)  /* bytes of one symbol or string table we are willing to load */

struct elf_seg {
    uint64_t vaddr, offset, filesz;
};

struct elf_sym {
    uint64_t value, size;
    size_t name; /* offset in strtab */
};

struct elf_file {
    char *path;           /* as /proc/<pid>/maps shows it */
    uint64_t ino;         /* inode from maps, checked against what we open; 0 for [vdso] */
    int fd;               /* negative if it could not be opened, or once closed */
    int loaded;           /* symbols read (or found missing) */
    struct elf_seg *segs; /* PT_LOAD headers with file contents */
    size_t n_segs, cap_segs;
    struct elf_sym *syms; /* FUNC symbols with a size, by value */
    size_t n_syms;
    char *strtab; /* NUL-terminated one byte past its end */
    size_t strtab_len;
};

struct map_ent {
    uint64_t start, end, pgoff;
    size_t file;      /* index in files, or SIZE_MAX for an anonymous or special mapping */
    char *name;       /* path or "[vdso]", "" for anonymous */
    uint32_t mapping; /* pprof mapping id, 0 for none */
};

struct funcmond_symbols {
    pid_t pid;
    struct map_ent *maps; /* executable mappings by start address */
    size_t n_maps, cap_maps;
    struct elf_file *files;
    size_t n_files, cap_files;
};

/* Reads len bytes at off, all inside a file of fsize bytes. Returns 0, -EINVAL if the range
 * is not inside the file, -EIO if the file shrank since fstat, or the -errno of pread. */
static int
read_at(int fd, uint64_t fsize, uint64_t off, uint64_t len, void *dst)
{
    size_t done = 0;

    if (off > fsize || len > fsize - off)
        return -EINVAL;
    while (done < len) {
        ssize_t r = pread(fd, (char *)dst + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            return -EIO;
        done += (size_t)r;
    }
    return 0;
}

static int
sym_cmp(const void *a, const void *b)
{
    const struct elf_sym *x = a, *y = b;

    return x->value < y->value ? -1 : x->value > y->value;
}

/* Loads the FUNC symbols of symbol table section sh (string table: its sh_link). Returns
 * the number kept, or -EINVAL if the section does not check out, -ENOMEM, or the error of
 * reading the file. */
static long
load_symtab(struct elf_file *f, uint64_t fsize, const Elf64_Shdr *shdrs, size_t shnum, const Elf64_Shdr *sh)
{
    const Elf64_Shdr *st;
    Elf64_Sym chunk[256];
    size_t n, kept = 0, cap = 0;
    struct elf_sym *syms = NULL;
    char *strtab = NULL;
    long rc;

    if ((sh->sh_entsize != 0 && sh->sh_entsize != sizeof(Elf64_Sym)) || sh->sh_link >= shnum || sh->sh_size > MAX_ELF_READ ||
        sh->sh_offset > fsize || sh->sh_size > fsize - sh->sh_offset)
        return -EINVAL; /* so that sh_offset + i * sizeof(Elf64_Sym) below cannot wrap */
    st = &shdrs[sh->sh_link];
    if (st->sh_type != SHT_STRTAB || st->sh_size == 0 || st->sh_size > MAX_ELF_READ || st->sh_offset > fsize ||
        st->sh_size > fsize - st->sh_offset)
        return -EINVAL;
    n = sh->sh_size / sizeof(Elf64_Sym);
    if ((strtab = malloc(st->sh_size + 1)) == NULL)
        return -ENOMEM;
    if ((rc = read_at(f->fd, fsize, st->sh_offset, st->sh_size, strtab)) < 0)
        goto fail;
    strtab[st->sh_size] = '\0';
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 256 ? n - i : 256;
        if ((rc = read_at(f->fd, fsize, sh->sh_offset + i * sizeof(Elf64_Sym), k * sizeof(Elf64_Sym), chunk)) < 0)
            goto fail;
        for (size_t j = 0; j < k; j++) {
            const Elf64_Sym *s = &chunk[j];
            if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_shndx == SHN_UNDEF || s->st_size == 0 || s->st_name == 0 ||
                s->st_name >= st->sh_size)
                continue;
            if ((rc = funcmond_array_reserve(&syms, &cap, kept + 1, sizeof(*syms))) < 0)
                goto fail;
            syms[kept++] = (struct elf_sym){.value = s->st_value, .size = s->st_size, .name = s->st_name};
        }
        i += k;
    }
    if (kept == 0) {
        rc = 0;
        goto fail;
    }
    qsort(syms, kept, sizeof(*syms), sym_cmp);
    f->syms = syms;
    f->n_syms = kept;
    f->strtab = strtab;
    f->strtab_len = st->sh_size;
    return (long)kept;
fail:
    free(syms);
    free(strtab);
    return rc;
}

/* Reads the load segments and the symbols of f, once. Whatever fails leaves f without
 * symbols (its addresses get hex names), never half-loaded. */
static void
elf_load(struct elf_file *f)
{
    Elf64_Ehdr eh;
    Elf64_Shdr *shdrs = NULL;
    struct stat st;
    uint64_t fsize;
    size_t shnum;

    if (f->loaded)
        return;
    f->loaded = 1;
    if (f->fd < 0 || fstat(f->fd, &st) < 0 || st.st_size <= 0)
        return;
    fsize = (uint64_t)st.st_size;
    if (read_at(f->fd, fsize, 0, sizeof(eh), &eh) < 0 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN))
        return;

    /* Program headers: PT_LOAD gives file offset -> link-time address. */
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum == PN_XNUM || eh.e_phoff > fsize ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > fsize - eh.e_phoff)
        return;
    for (size_t i = 0; i < eh.e_phnum; i++) { /* < 65535, and all inside the file */
        Elf64_Phdr ph;
        if (read_at(f->fd, fsize, eh.e_phoff + i * sizeof(ph), sizeof(ph), &ph) < 0)
            break;
        if (ph.p_type != PT_LOAD || ph.p_filesz == 0)
            continue;
        if (funcmond_array_reserve(&f->segs, &f->cap_segs, f->n_segs + 1, sizeof(*f->segs)) < 0)
            break;
        f->segs[f->n_segs++] = (struct elf_seg){.vaddr = ph.p_vaddr, .offset = ph.p_offset, .filesz = ph.p_filesz};
    }
    if (f->n_segs == 0)
        return;

    /* Section headers: find .symtab, else .dynsym. */
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr))
        return;
    shnum = eh.e_shnum;
    if (shnum == 0) { /* extended numbering: the count is in section 0's sh_size */
        Elf64_Shdr sh0;
        if (read_at(f->fd, fsize, eh.e_shoff, sizeof(sh0), &sh0) < 0 || sh0.sh_size > MAX_ELF_SECTIONS)
            return;
        shnum = (size_t)sh0.sh_size;
    }
    if (shnum == 0 || shnum > fsize / sizeof(Elf64_Shdr) || (shdrs = calloc(shnum, sizeof(*shdrs))) == NULL)
        return;
    if (read_at(f->fd, fsize, eh.e_shoff, shnum * sizeof(*shdrs), shdrs) == 0) {
        /* Only the first table of each kind: a hostile file with a million of them must not
         * make us read each one. */
        const unsigned types[2] = {SHT_SYMTAB, SHT_DYNSYM};
        for (int t = 0; t < 2 && f->n_syms == 0; t++)
            for (size_t i = 0; i < shnum; i++)
                if (shdrs[i].sh_type == types[t]) {
                    load_symtab(f, fsize, shdrs, shnum, &shdrs[i]);
                    break;
                }
    }
    free(shdrs);
}

/* Name of the function at link-time address vaddr in f, or NULL. */
static const char *
elf_lookup(const struct elf_file *f, uint64_t vaddr)
{
    size_t lo = 0, hi = f->n_syms;

    while (lo < hi) { /* first symbol above vaddr */
        size_t mid = lo + (hi - lo) / 2;
        if (f->syms[mid].value <= vaddr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* The nearest symbols below may be aliases or nested; look at a few. */
    for (size_t i = lo, k = 0; i > 0 && k < 16; i--, k++) {
        const struct elf_sym *s = &f->syms[i - 1];
        if (vaddr - s->value < s->size)
            return f->strtab + s->name;
    }
    return NULL;
}

static void
elf_close(struct elf_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
}

/* Opens a regular file without following anything the target could swap in: by O_PATH
 * first, checked for type and inode, then reopened for reading through /proc/self/fd.
 * Returns the descriptor, or -errno (-ESTALE: not the regular file with that inode). */
static int
open_checked(const char *path, uint64_t ino)
{
    char self[64];
    struct stat st;
    int pfd, fd;

    if ((pfd = open(path, O_PATH | O_CLOEXEC)) < 0)
        return -errno;
    if (fstat(pfd, &st) < 0) {
        fd = -errno;
    } else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_ino != ino) {
        fd = -ESTALE;
    } else {
        snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
        if ((fd = open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
            fd = -errno;
    }
    close(pfd);
    return fd;
}

/* The target's [vdso] is the kernel's image, the same as ours when the kernel and the ABI
 * are (checked by size): its symbols come from a copy of our own, in a memfd so that the
 * file reader serves it, and no access to the target's memory is needed. Returns the
 * memfd, or -errno (-ENOENT: we have no vdso of that size). */
static int
own_vdso_fd(uint64_t size)
{
    unsigned long long start = 0, end = 0;
    char *line = NULL;
    size_t cap = 0, done = 0;
    FILE *fp = fopen("/proc/self/maps", "re");
    int fd;

    if (fp == NULL)
        return -errno;
    while (getline(&line, &cap, fp) > 0)
        if (strstr(line, "[vdso]") != NULL && sscanf(line, "%llx-%llx", &start, &end) == 2)
            break;
    free(line);
    fclose(fp);
    if (end <= start || end - start != size)
        return -ENOENT;
    if ((fd = memfd_create("funcmond-vdso", MFD_CLOEXEC)) < 0)
        return -errno;
    while (done < size) {
        ssize_t w = write(fd, (const char *)(uintptr_t)start + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            close(fd);
            return -err;
        }
        done += (size_t)w;
    }
    return fd;
}

/* Opens the file behind mapping m into f->fd (negative if it cannot be opened: its
 * addresses get hex names then). */
static void
elf_open(struct elf_file *f, pid_t pid, const struct map_ent *m)
{
    char path[PATH_MAX + 64];

    f->fd = -1;
    if (f->ino == 0) {
        if (strcmp(f->path, "[vdso]") == 0)
            f->fd = own_vdso_fd(m->end - m->start);
        return;
    }
    if (snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, f->path) < (int)sizeof(path))
        f->fd = open_checked(path, f->ino);
    if (f->fd < 0) { /* deleted, replaced, or outside our view: the mapping itself */
        snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, (int)pid, m->start, m->end);
        f->fd = open_checked(path, f->ino);
    }
}

static void
maps_free(struct funcmond_symbols *sy)
{
    for (size_t i = 0; i < sy->n_maps; i++)
        free(sy->maps[i].name);
    free(sy->maps);
    sy->maps = NULL;
    sy->n_maps = sy->cap_maps = 0;
}

struct funcmond_symbols *
funcmond_symbols_new(pid_t pid)
{
    struct funcmond_symbols *sy = calloc(1, sizeof(*sy));

    if (sy != NULL)
        sy->pid = pid;
    return sy;
}

void
funcmond_symbols_free(struct funcmond_symbols *sy)
{
    if (sy == NULL)
        return;
    maps_free(sy);
    for (size_t i = 0; i < sy->n_files; i++) {
        elf_close(&sy->files[i]);
        free(sy->files[i].path);
        free(sy->files[i].segs);
        free(sy->files[i].syms);
        free(sy->files[i].strtab);
    }
    free(sy->files);
    free(sy);
}

/* Index of the file (path, ino) in sy->files, opened now if new; SIZE_MAX if none. */
static size_t
file_for(struct funcmond_symbols *sy, const char *path, uint64_t ino, const struct map_ent *m)
{
    struct elf_file *f;

    for (size_t i = 0; i < sy->n_files; i++)
        if (sy->files[i].ino == ino && strcmp(sy->files[i].path, path) == 0)
            return i;
    if (sy->n_files >= MAX_ELF_FILES || funcmond_array_reserve(&sy->files, &sy->cap_files, sy->n_files + 1, sizeof(*sy->files)) < 0)
        return SIZE_MAX;
    f = &sy->files[sy->n_files];
    memset(f, 0, sizeof(*f));
    if ((f->path = strdup(path)) == NULL)
        return SIZE_MAX;
    f->ino = ino;
    elf_open(f, sy->pid, m);
    return sy->n_files++;
}

/* Opening the files now lets them be read after the target has exited. */
int
funcmond_symbols_read_maps(struct funcmond_symbols *sy)
{
    char path[64], *line = NULL;
    size_t cap = 0;
    struct funcmond_symbols next = *sy;
    FILE *fp;
    int rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)sy->pid);
    if ((fp = fopen(path, "re")) == NULL)
        return errno == ENOENT ? -ESRCH : -errno;
    next.maps = NULL;
    next.n_maps = next.cap_maps = 0;
    while (getline(&line, &cap, fp) > 0) {
        unsigned long long start, end, off, ino;
        unsigned maj, mnr;
        char perms[8];
        int pos = 0;
        struct map_ent m;

        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj, &mnr, &ino, &pos) < 7 || pos == 0 ||
            strchr(perms, 'x') == NULL || end <= start)
            continue;
        line[strcspn(line, "\n")] = '\0';
        memset(&m, 0, sizeof(m));
        m.start = start;
        m.end = end;
        m.pgoff = off;
        m.file = SIZE_MAX;
        if ((m.name = strdup(line + pos)) == NULL ||
            funcmond_array_reserve(&next.maps, &next.cap_maps, next.n_maps + 1, sizeof(m)) < 0) {
            free(m.name);
            rc = -ENOMEM;
            break;
        }
        if (m.name[0] == '/' && ino != 0)
            m.file = file_for(&next, m.name, ino, &m);
        else if (strcmp(m.name, "[vdso]") == 0)
            m.file = file_for(&next, m.name, 0, &m);
        next.maps[next.n_maps++] = m;
    }
    free(line);
    fclose(fp);
    sy->files = next.files; /* files opened so far are kept either way */
    sy->n_files = next.n_files;
    sy->cap_files = next.cap_files;
    if (rc < 0 || next.n_maps == 0) {
        maps_free(&next);
        return rc < 0 ? rc : -ESRCH;
    }
    maps_free(sy);
    sy->maps = next.maps; /* /proc/<pid>/maps is sorted by address */
    sy->n_maps = next.n_maps;
    sy->cap_maps = next.cap_maps;
    return 0;
}

void
funcmond_symbols_declare_mappings(struct funcmond_symbols *sy, struct funcmond_pprof *p)
{
    char exe[PATH_MAX], path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/%d/exe", (int)sy->pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < sy->n_maps; i++) {
            struct map_ent *m = &sy->maps[i];
            if (m->file != SIZE_MAX && (strcmp(m->name, exe) == 0) == (pass == 0))
                m->mapping = funcmond_pprof_mapping(p, m->start, m->end, m->pgoff, m->name);
        }
}

/* The executable mapping that holds addr, or NULL. */
static const struct map_ent *
map_for(const struct funcmond_symbols *sy, uint64_t addr)
{
    size_t lo = 0, hi = sy->n_maps;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < sy->maps[mid].start)
            hi = mid;
        else if (addr >= sy->maps[mid].end)
            lo = mid + 1;
        else
            return &sy->maps[mid];
    }
    return NULL;
}

void
funcmond_symbols_frame(struct funcmond_symbols *sy, uint64_t addr, uint64_t lookup, struct funcmond_pprof_frame *frame, char *hex,
                       size_t hexlen)
{
    const struct map_ent *m = map_for(sy, lookup);
    const char *name = NULL;

    frame->address = addr;
    frame->filename = m ? m->name : NULL;
    frame->mapping = m ? m->mapping : 0;
    if (m != NULL && m->file != SIZE_MAX) {
        struct elf_file *f = &sy->files[m->file];
        uint64_t off = lookup - m->start + m->pgoff;
        elf_load(f);
        for (size_t i = 0; i < f->n_segs; i++) {
            const struct elf_seg *s = &f->segs[i];
            if (off >= s->offset && off - s->offset < s->filesz) {
                name = elf_lookup(f, off - s->offset + s->vaddr);
                break;
            }
        }
    }
    if (name == NULL) {
        snprintf(hex, hexlen, "0x%" PRIx64, addr);
        name = hex;
    }
    frame->name = name;
}
