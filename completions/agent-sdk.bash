_agent_sdk_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _AGENT_SDK_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _agent_sdk_completion agent-sdk
