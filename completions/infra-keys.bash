# bash completion for infra-keys
_infra_keys() {
    local cur prev words cword
    _init_completion || return
    local commands="init verify status rotate-root rotate-data-key rewrap backup restore help"
    local global="--config --kube-deployment --db-url --kubeconfig --context --namespace --quiet --verbose --no-progress --version --help"
    local cmd="" w
    for w in "${words[@]:1:cword-1}"; do
        case " $commands " in *" $w "*) cmd=$w; break;; esac
    done
    case "$prev" in
        --config|-c|--kubeconfig|--from-key|--from-config|--passphrase-file|--output|-o|--check|--backup|--recipients-file|-R)
            _filedir; return;;
        --level|-l) COMPREPLY=($(compgen -W "config keys full" -- "$cur")); return;;
    esac
    local opts
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "$commands $global" -- "$cur")); return;;
        init) opts="--dry-run --json";;
        verify) opts="--level --json --jobs";;
        status) opts="--json";;
        rotate-root) opts="--dry-run --resume --abort --retire-old --server-stopped --to-key-id --backup --recipient --recipients-file --passphrase-file --passphrase-fd --passphrase-command --allow-weak-passphrase --scrypt-work-factor --json";;
        rotate-data-key) opts="--dry-run --server-stopped --backup --recipient --recipients-file --passphrase-file --passphrase-fd --passphrase-command --allow-weak-passphrase --scrypt-work-factor --json";;
        rewrap) opts="--from-key --from-config --dry-run --server-stopped --json";;
        backup) opts="--output --force --recipient --recipients-file --identity --passphrase-file --passphrase-fd --passphrase-command --allow-weak-passphrase --scrypt-work-factor --check --offline --info --json";;
        restore) opts="--dry-run --force --with-db-key --identity --passphrase-file --passphrase-fd --passphrase-command --server-stopped --json";;
        help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return;;
    esac
    if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "$opts --help" -- "$cur")); else _filedir; fi
}
complete -F _infra_keys infra-keys
