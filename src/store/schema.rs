//! The service's fixed tables (numbers tables are dynamic: see `sql.rs`).
//!
//! Times are `Timestamp`: on MySQL it reads and writes `DATETIME(3)` columns exactly as `Datetime`
//! does, and it is the type SQLite's chrono support knows, so one schema serves both backends.

diesel::table! {
    bases (id) {
        id -> BigInt,
        nombre -> Varchar,
        tabla -> Varchar,
        cps -> Double,
        max_canales -> Integer,
        reintentos -> Integer,
        intervalo_reintento -> Integer,
        amd -> Varchar,
        amd_incierto -> Varchar,
        destino_humano -> Varchar,
        destino_maquina -> Varchar,
        caller_id -> Nullable<Varchar>,
        gateway -> Nullable<Varchar>,
        timeout_llamada -> Integer,
        hora_inicio -> Time,
        hora_fin -> Time,
        dias -> Varchar,
        zona_horaria -> Varchar,
        estado -> Varchar,
        creada -> Timestamp,
        actualizada -> Timestamp,
        motivo -> Nullable<Varchar>,
        mensaje_humano -> Nullable<Varchar>,
        mensaje_maquina -> Nullable<Varchar>,
        mensaje_baja -> Nullable<Varchar>,
        mensaje_abandono -> Nullable<Varchar>,
        menu -> Nullable<Text>,
        buzon -> Varchar,
        espera_agente_s -> Integer,
        amd_integrado -> Nullable<Text>,
        reglas -> Nullable<Text>,
    }
}

diesel::table! {
    intentos_telefono (id) {
        id -> BigInt,
        telefono -> Varchar,
        campana -> Varchar,
        uuid -> Varchar,
        momento -> Timestamp,
    }
}

diesel::table! {
    llamadas (id) {
        id -> BigInt,
        campana -> Varchar,
        numero_id -> BigInt,
        telefono -> Varchar,
        intento -> Integer,
        uuid -> Varchar,
        nodo -> Varchar,
        estado -> Varchar,
        resultado -> Varchar,
        causa -> Nullable<Varchar>,
        amd_resultado -> Nullable<Varchar>,
        amd_causa -> Nullable<Varchar>,
        inicio -> Timestamp,
        contestada -> Nullable<Timestamp>,
        fin -> Timestamp,
        billsec -> Integer,
        duracion -> Integer,
        disposicion -> Nullable<Varchar>,
        mensaje_ms -> Nullable<Integer>,
        teclas -> Nullable<Varchar>,
        accion -> Nullable<Varchar>,
        transferida_a -> Nullable<Varchar>,
        agente_contesto -> Nullable<Bool>,
        tras_beep_ms -> Nullable<Integer>,
        amd_inicial -> Nullable<Varchar>,
    }
}

diesel::table! {
    dnc (telefono) {
        telefono -> Varchar,
        creado -> Timestamp,
    }
}

diesel::table! {
    nodos (nombre) {
        nombre -> Varchar,
        drenado -> Bool,
        cambiado -> Nullable<Timestamp>,
    }
}
