# fish completion for infra-keys
set -l cmds init verify status rotate-root rotate-data-key rewrap backup restore help
complete -c infra-keys -f
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a init -d 'create the root key and the db key if missing'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a verify -d 'prove the keys and every encrypted value'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a status -d 'show keys and retained keys'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a rotate-root -d 'replace the root key'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a rotate-data-key -d 'replace the db key, re-sealing every encrypted value'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a rewrap -d 're-wrap the db key under the configured root key'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a backup -d 'write an encrypted backup of the keys'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a restore -d 'restore keys from a backup'
complete -c infra-keys -n "not __fish_seen_subcommand_from $cmds" -a help -d 'show the commands or one command\'s options'
complete -c infra-keys -n "__fish_seen_subcommand_from help" -a "$cmds"
complete -c infra-keys -s c -l config -r -F -d 'Infra server config'
complete -c infra-keys -l kube-deployment -x -d 'Infra server Deployment NAMESPACE/NAME'
complete -c infra-keys -l db-url -r -d 'PostgreSQL connection string'
complete -c infra-keys -l kubeconfig -r -F -d 'kubeconfig file'
complete -c infra-keys -l context -x -d 'kubeconfig context instead of current-context'
complete -c infra-keys -l namespace -x -d 'Kubernetes namespace'
complete -c infra-keys -s q -l quiet -d 'print only errors'
complete -c infra-keys -s v -l verbose -d 'print more detail'
complete -c infra-keys -l no-progress -d 'never draw a progress bar'
complete -c infra-keys -l version -d 'print the version'
complete -c infra-keys -n "__fish_seen_subcommand_from init rotate-root rotate-data-key rewrap restore" -s n -l dry-run -d 'print the plan only'
complete -c infra-keys -n "__fish_seen_subcommand_from verify" -s l -l level -x -a 'config keys full'
complete -c infra-keys -n "__fish_seen_subcommand_from $cmds" -l json -d 'JSON outcome'
complete -c infra-keys -n "__fish_seen_subcommand_from backup" -l check -r -F -d "prove a backup opens the live db key"
complete -c infra-keys -n "__fish_seen_subcommand_from backup" -l offline -d "with --check: no config or database"
complete -c infra-keys -n "__fish_seen_subcommand_from backup" -l info -r -F -d "what a backup tells without a secret"
complete -c infra-keys -n "__fish_seen_subcommand_from backup rotate-root rotate-data-key" -s r -l recipient -x -d "age1… or ssh-ed25519 public key"
complete -c infra-keys -n "__fish_seen_subcommand_from backup rotate-root rotate-data-key" -s R -l recipients-file -r -F -d "file of public keys"
complete -c infra-keys -n "__fish_seen_subcommand_from backup rotate-root rotate-data-key" -l scrypt-work-factor -x -d "log2 of scrypt N (10-22)"
complete -c infra-keys -n "__fish_seen_subcommand_from backup restore" -s i -l identity -r -F -d "age identity or OpenSSH key"
complete -c infra-keys -n "__fish_seen_subcommand_from verify" -s j -l jobs -x -d "decrypting threads"
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root" -l resume -d 'complete an interrupted rotation'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root" -l abort -d 'drop a rotation that never committed'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root" -l retire-old -d 'delete retained keys after full verification'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root" -l to-key-id -x -d 'new KMS key id'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root" -l backup -r -F -d 'backup of the new keys, before the commit'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-root rotate-data-key rewrap restore" -l server-stopped -d 'assert the server is stopped'
complete -c infra-keys -n "__fish_seen_subcommand_from rewrap" -l from-key -r -F -d 'old root key file'
complete -c infra-keys -n "__fish_seen_subcommand_from rewrap" -l from-config -r -F -d 'old Infra config'
complete -c infra-keys -n "__fish_seen_subcommand_from backup" -s o -l output -r -F -d 'backup file'
complete -c infra-keys -n "__fish_seen_subcommand_from backup restore rotate-root rotate-data-key" -l passphrase-file -r -F
complete -c infra-keys -n "__fish_seen_subcommand_from backup restore rotate-root rotate-data-key" -l passphrase-fd -x
complete -c infra-keys -n "__fish_seen_subcommand_from backup restore rotate-root rotate-data-key" -l passphrase-command -x -d 'command printing the passphrase'
complete -c infra-keys -n "__fish_seen_subcommand_from backup restore" -l force -d 'overwrite / replace'
complete -c infra-keys -n "__fish_seen_subcommand_from restore" -l with-db-key -d 'also restore the dbkey row'
complete -c infra-keys -n "__fish_seen_subcommand_from backup rotate-root rotate-data-key" -l allow-weak-passphrase -d 'accept a passphrase under 12 characters'
complete -c infra-keys -n "__fish_seen_subcommand_from rotate-data-key" -l backup -r -F -d 'backup of the new db key'
