/**
 * Well-known leaked passwords and their stems, lowercase, written from the public top-password lists
 * (RockYou, the yearly "worst passwords" lists, breach compilations) plus obvious words for this
 * platform. The length rule already rejects anything under 10 characters, so short entries matter as
 * stems: `checkPassword` strips trailing digits and symbols (`Dragon2024!` → `dragon`) and undoes
 * repetition (`monkeymonkey` → `monkey`) before looking a password up here.
 */
const words = (list: string): string[] => list.trim().split(/\s+/);

export const COMMON_PASSWORDS: ReadonlySet<string> = new Set<string>([
  // Keyboard walks and digit runs (also caught by the sequence rule when they are the whole password).
  ...words(`
    123456 1234567 12345678 123456789 1234567890 12345678910 0123456789 0987654321 987654321 9876543210
    111111 1111111111 000000 0000000000 121212 123123 123123123 112233 11223344 123321 1234554321 654321
    666666 696969 159753 159357 147258 147258369 147852369 741852963 789456123 123654 123654789 1029384756
    7777777 888888 999999 101010 112358 11235813 31415926 3141592654 2718281828 1q2w3e 1q2w3e4r 1q2w3e4r5t
    1q2w3e4r5t6y q1w2e3r4 q1w2e3r4t5 1qaz 1qaz2wsx 1qaz2wsx3edc 1qazxsw2 zaq1 zaq12wsx zaq1xsw2 zaq1zaq1
    !qaz2wsx !qaz@wsx qazwsx qazwsxedc qazxsw qweasd qweasdzxc asdzxc qwe qwer qwert qwerty qwertyu qwertyui
    qwertyuiop qwertyuiop[] qwertz qwertzu qwertzuiop azerty azertyuiop asdf asdfg asdfgh asdfghj asdfghjk
    asdfghjkl asdfjkl zxc zxcv zxcvb zxcvbn zxcvbnm poiuytrewq lkjhgfdsa mnbvcxz ytrewq 123qwe 123qweasd
    123qweasdzxc qwe123 qwerty123 abc abcd abcde abcdef abcdefg abcdefgh abcdefghi abcdefghij abcdefghijk
    abcdefghijklmnopqrstuvwxyz abc123 abcd1234 a1b2c3 a1b2c3d4 aaa aaaa aaaaaa abcabc 1a2b3c !@#$%^ !@#$%^&*
    !@#$%^&*() 1234qwer 12qwaszx 1234abcd a123456 aa123456 q123456 iloveyou123
  `),
  // The perennial leaders and their disguises.
  ...words(`
    password passw0rd p@ssword p@ssw0rd pa55word pa55w0rd pa$$word p@$$w0rd passwd passwort pass pass123
    password1 mypassword newpassword oldpassword yourpassword thepassword nopassword password! passpass
    letmein letmein! let_me_in letmeinnow iloveyou iloveu iloveyou! loveyou loveme lovely love iloveme
    welcome welcome1 welcomehome admin admin123 administrator adminadmin root toor superuser sysadmin
    webmaster changeme change_me default guest test test123 testing tester testtest test1 demo sample
    user username user123 login logon access access14 letmeout secret secret1 topsecret supersecret
    mysecret private opensesame trustno1 trustno trustme trustnoone whatever nothing
    nopass qwerty1 monkey dragon master shadow sunshine princess football baseball basketball soccer
    hockey superman batman spiderman ironman starwars pokemon killer hunter ranger buster tigger
    charlie freedom flower hello hello123 helloworld hellokitty hithere hiya goodbye cheese computer
    internet whatsup blahblah blah abc123abc fuckyou fuckoff biteme letsgo getmein mustang corvette
    ferrari porsche mercedes jaguar harley yamaha kawasaki ducati camaro cowboy cowboys samsung
    google facebook twitter instagram linkedin youtube yahoo hotmail gmail outlook microsoft windows
    apple iphone android linux ubuntu debian oracle mysql postgres postgresql redis docker kubernetes
    server database system network security firewall backup office work company business manager
    invalid unknown none null undefined nologin temp temppassword temp123 initial start begin
    onetwothree zerozero ninja samurai matrix neo trinity morpheus zion
  `),
  // Names that top every leak.
  ...words(`
    michael jennifer jordan jordan23 thomas robert daniel andrew joshua matthew jessica ashley amanda
    nicole michelle hannah george charles william james john david richard joseph christopher anthony
    mark donald steven paul kevin brian edward ronald timothy jason jeffrey ryan jacob gary nicholas
    eric stephen jonathan larry justin scott brandon benjamin samuel frank gregory raymond alexander
    patrick jack dennis jerry tyler aaron henry douglas peter adam nathan zachary walter kyle harold
    carl jeremy keith roger gerald ethan arthur terry christian sean lawrence austin joe noah jesse
    albert bryan billy bruce willie jordan dylan alan ralph gabriel roy juan wayne eugene logan randy
    louis russell vincent philip bobby johnny bradley mary patricia linda barbara elizabeth susan
    margaret sarah karen nancy lisa betty dorothy sandra kimberly donna emily carol melissa deborah
    stephanie rebecca laura sharon cynthia kathleen amy shirley angela helen anna brenda pamela emma
    katherine christine samantha debra rachel catherine carolyn janet ruth maria heather diane virginia
    julie joyce victoria olivia kelly christina lauren joan evelyn judith megan cheryl andrea martha
    madison teresa gloria sara janice jean alice kathryn abigail sophia frances judy isabella denise
    beverly danielle marilyn grace amber charlotte natalie diana brittany alexis kayla lori tiffany
    taylor morgan jasmine alexandra vanessa chelsea courtney monica veronica crystal erica erin jamie
    alex alexa sam max maxwell jake jackie jenny jen jess chris mike matt nick tom tommy ben dan danny
    sammy joey johnny freddy eddie stevie bella lily lucy molly daisy sophie chloe zoe mia ella ava
    liam lucas mason oliver elijah aiden jayden carter luke owen isaac leo julian hunter anderson
    smith johnson williams brown jones garcia miller davis rodriguez martinez wilson moore jackson
    martin lee thompson white harris clark lewis robinson walker young allen king wright mohammed
    muhammad ahmed ali fatima wei li zhang wang chen liu yang ivan olga natasha sergey dmitry
    andrea marco giulia francesca pierre marie jean-pierre hans jurgen klaus
  `),
  // Pets, animals, food, colours, nature and everyday words.
  ...words(`
    buster tigger bailey max rocky lucky shadow sparky pepper ginger cookie muffin snoopy scooby
    garfield simba nala bambi dumbo kitty kitten kittycat puppy puppies doggy doggie dog cat cats dogs
    tiger tigers lion lions eagle eagles falcon falcons hawk panther panthers jaguars wolf wolves wolfpack
    bear bears bulldog bulldogs dolphin dolphins shark sharks whale turtle rabbit bunny horse horses
    pony unicorn dragons dragonfly butterfly ladybug bumblebee honeybee monkeys donkey chicken turkey
    penguin panda koala zebra giraffe elephant hippo snake cobra viper python spider scorpion phoenix
    chocolate vanilla strawberry banana apple orange lemon cherry peaches peach mango coconut pineapple
    pumpkin cupcake pancake cookies biscuit candy sugar honey sweetie sweetheart sweetpea cutie cutiepie
    babygirl babyboy baby babe angel angels angelface princess1 prince queen king kingdom empire
    rainbow sunshine moonlight moon sun star stars starlight sky blue red green yellow purple pink
    black white silver gold golden diamond diamonds crystal ruby emerald sapphire pearl jasmine rose
    roses flower flowers daisy lily tulip forest river ocean summer winter spring autumn snowball
    snowflake thunder lightning storm hurricane tornado fire water earth nature mountain island beach
    coffee tea beer whiskey vodka tequila pizza burger hotdog pasta taco nachos bacon cheese1 popcorn
    peanut butter jelly cheesecake icecream marshmallow chocolate1 money money1 dollar dollars cash
    rich million billion lottery winner winning champion champions victory success lucky7 lucky13
    magic wizard merlin gandalf frodo hobbit legolas aragorn sauron mordor hogwarts harrypotter
    hermione dumbledore voldemort pikachu charizard naruto sasuke goku dragonball vegeta onepiece
    luffy zelda mario luigi sonic tetris minecraft fortnite roblox warcraft starcraft diablo halo
    playstation xbox nintendo gameboy gamer gaming player1 batman1 joker superman1 wonderwoman
    avengers thor hulk captain deadpool wolverine xmen marvel startrek enterprise spock kirk yoda
    skywalker vader darthvader chewbacca jedi sith stargate terminator rambo rocky1 scarface godfather
    titanic avatar simpsons homer bart futurama southpark friends seinfeld sherlock dexter lost
  `),
  // Sport, music and places.
  ...words(`
    football1 soccer1 baseball1 basketball1 golf golfer tennis rugby cricket boxing wrestling karate
    skate skater surfer surfing snowboard cycling runner running swimming hockey1 lacrosse volleyball
    liverpool arsenal chelsea manutd manchester manchesterunited united tottenham everton barcelona
    barca realmadrid madrid juventus milan acmilan inter bayern dortmund ajax celtic rangers porto
    benfica yankees redsox dodgers cubs mets braves giants steelers packers patriots broncos raiders
    dallas lakers celtics bulls knicks warriors heat spurs rockets canucks bruins penguins blackhawks
    nascar formula1 metallica nirvana slipknot eminem beatles elvis madonna rihanna beyonce shakira
    justin bieber taylorswift onedirection coldplay linkinpark guitar guitar1 drummer music musician
    rockstar rockandroll hiphop jazz blues london paris berlin rome tokyo newyork chicago boston
    texas california florida london1 england scotland ireland wales canada america usa mexico brazil
    france germany italy spain russia china japan india africa australia europe asia holland
    amsterdam sydney toronto vancouver dubai moscow beijing shanghai seoul lagos nairobi cairo
    johannesburg capetown accra kampala
  `),
  // Feelings, faith, family, life.
  ...words(`
    jesus jesus1 jesuschrist christ god godisgood ilovegod ilovejesus blessed blessing faith hope
    grace1 heaven hallelujah amen bible church angel1 lovelove loveyou1 lover lovers loving romance
    forever forever1 always together family familia mother father mommy daddy mom dad mama papa
    brother sister sisters brothers friend friends bestfriend bff myself happy happiness smile
    smiley funny crazy silly stupid dummy idiot loser killer1 hacker hacked pirate cracker
    letmein1 freedom1 liberty justice peace warrior soldier sniper army navy marine marines police
    sheriff fireman doctor nurse teacher student school college university professor
  `),
  // Months, days and other calendar words (years are digits, which are stripped anyway).
  ...words(`
    january february march april may june july august september october november december
    monday tuesday wednesday thursday friday saturday sunday weekend holiday birthday christmas
    xmas easter halloween valentine newyear today tomorrow yesterday
  `),
  // Other languages' "password", "love" and favourites.
  ...words(`
    motdepasse contrasena contraseña senha parola wachtwoord haslo hasło salasana lozinka jelszo
    heslo geslo sifre parol пароль mima 密码 passe clave geheim kennwort amore tiamo teamo jetaime
    ichliebedich liebe schatz soleil chouchou doudou bonjour hola ciao namaste salaam shalom
    mamamia bebe princesa princesse prinzessin
  `),
  // Obvious words for an imputation platform: the first things someone signing up here would try.
  ...words(`
    imputation imputations impute imputed imputeme imputationserver imputation-server genotype
    genotypes genotyping genome genomes genomic genomics genetic genetics geneticist gene genes
    michigan umich michiganimputation topmed topmedimputation afrigen afrigen-d h3africa elwazi
    cloudgene minimac minimac3 minimac4 beagle beagle5 eagle eagle2 shapeit shapeit4 impute2 impute5
    plink plink2 bcftools samtools htslib tabix vcf bgzip hapmap 1000genomes thousandgenomes gnomad
    dbsnp hrc caapa haplotype haplotypes phasing phased reference referencepanel refpanel panel panels
    cohort biobank ukbiobank gwas snp snps allele alleles variant variants chromosome chromosomes
    dna rna sequencing sequence exome wgs wes ga4gh bioinformatics bioinformatician computational
    biology biologist biostatistics statistics statistician epidemiology research researcher
    science scientist laboratory lab labrat postdoc phdstudent phd thesis dissertation grant
    federated federation platform imputeplatform fip pipeline workflow nextflow snakemake cluster
    hpc slurm python rstudio bioconductor
  `),
]);
