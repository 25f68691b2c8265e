# bash completion for infra-keys
_infra_keys() {
    local cur prev words cword
    _init_completion || return
    local commands="init verify status rotate-root rewrap backup restore"
    local global="--config --db-url --kubeconfig --quiet --verbose --version --help"
    local cmd="" w
    for w in "${words[@]:1:cword-1}"; do
        case " $commands " in *" $w "*) cmd=$w; break;; esac
    done
    case "$prev" in
        --config|-c|--kubeconfig|--from-key|--from-config|--passphrase-file|--output|-o|--check)
            _filedir; return;;
        --level|-l) COMPREPLY=($(compgen -W "config keys full" -- "$cur")); return;;
    esac
    local opts
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")); return;;
        init) opts="--dry-run --json";;
        verify) opts="--level --json --jobs";;
        status) opts="--json";;
        rotate-root) opts="--dry-run --resume --abort --retire-old --server-stopped --to-key-id --json";;
        rewrap) opts="--from-key --from-config --dry-run --server-stopped --json";;
        backup) opts="--output --force --passphrase-file --passphrase-fd --allow-weak-passphrase --check --kdf-memory --kdf-iterations --json";;
        restore) opts="--dry-run --force --with-db-key --passphrase-file --passphrase-fd --server-stopped --json";;
    esac
    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); else _filedir; fi
}
complete -F _infra_keys infra-keys
