plugins {
    java
    id("org.springframework.boot") version "3.2.5"
}
java {
    toolchain {
        languageVersion = JavaLanguageVersion.of(21)
    }
}
dependencies {
    implementation("org.springframework.boot:spring-boot-starter-web")
}
