;; Hostile guest `table-grow`: a hand-written component whose handle()
;; grows a table without bound. Rust cannot emit table.grow, so this one is
;; WAT, compiled by the test. describe() returns a static manifest.
(component
  (core module $m
    (memory (export "memory") 1)
    (table $t 1 funcref)
    ;; Manifest record at 0x100: name, version, description (ptr,len each),
    ;; skills and capabilities (empty lists).
    (data (i32.const 0x100)
      "\00\02\00\00" "\0a\00\00\00"   ;; name = "table-grow"
      "\10\02\00\00" "\05\00\00\00"   ;; version = "0.1.0"
      "\20\02\00\00" "\0b\00\00\00"   ;; description = "grows table"
      "\00\00\00\00" "\00\00\00\00"   ;; skills = []
      "\00\00\00\00" "\00\00\00\00")  ;; capabilities = []
    (data (i32.const 0x200) "table-grow")
    (data (i32.const 0x210) "0.1.0")
    (data (i32.const 0x220) "grows table")
    (global $bump (mut i32) (i32.const 0x1000))
    ;; Bump allocator for arguments the host passes in.
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (if (i32.gt_u (global.get $bump) (i32.mul (memory.size) (i32.const 65536)))
        (then (drop (memory.grow (i32.const 16)))))
      (local.get $p))
    (func (export "describe") (result i32) (i32.const 0x100))
    ;; request flattens to 9 i32s: session-id, text, history (ptr,len each)
    ;; and context (discriminant, ptr, len).
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (loop $grow
        (drop (table.grow $t (ref.null func) (i32.const 10000)))
        (br $grow))
      (unreachable))
  )
  (core instance $i (instantiate $m))

  ;; Types used by exports must be exported (named) themselves.
  (type $skill' (record (field "name" string) (field "description" string) (field "keywords" (list string))))
  (export $skill "skill" (type $skill'))
  (type $cap' (record (field "name" string) (field "reason" string)))
  (export $cap "capability-request" (type $cap'))
  (type $manifest' (record (field "name" string) (field "version" string) (field "description" string)
                           (field "skills" (list $skill)) (field "capabilities" (list $cap))))
  (export $manifest "manifest" (type $manifest'))
  (type $role' (enum "system" "user" "assistant" "agent"))
  (export $role "role" (type $role'))
  (type $turn' (record (field "role" $role) (field "content" string)))
  (export $turn "turn" (type $turn'))
  (type $request' (record (field "session-id" string) (field "text" string)
                          (field "history" (list $turn)) (field "context" (option string))))
  (export $request "request" (type $request'))
  (type $response' (record (field "text" string) (field "data" (option string))))
  (export $response "response" (type $response'))
  (type $agent-error' (variant (case "invalid-request" string) (case "capability-failed" string) (case "failed" string)))
  (export $agent-error "agent-error" (type $agent-error'))

  (func (export "describe") (result $manifest)
    (canon lift (core func $i "describe") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (func (export "handle") (param "req" $request) (result (result $response (error $agent-error)))
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
)
